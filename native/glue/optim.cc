// optim kernels: to be written.
