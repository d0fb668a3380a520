// rows kernels: to be written.
