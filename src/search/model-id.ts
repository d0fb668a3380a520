// The identity of a checkpoint as the search index records it: embeddings from another model, or from the same
// model after fine-tuning or a changed image processor, are not comparable with a new query. A sha256 over the
// config files (config.json and the image processor configs, byte for byte) and a fingerprint of each weight
// file (name, size, its first and last MiB: reading every byte of a large checkpoint on each search would cost
// more than the search).
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelIdentity } from './index-file.js';

const CONFIGS = ['config.json', 'preprocessor_config.json', 'processor_config.json'];
const SAMPLE = 1 << 20;

export function modelIdentity(dir: string, family: string): ModelIdentity {
  const h = createHash('sha256');
  for (const name of CONFIGS) {
    const p = join(dir, name);
    h.update(`${name}\0`);
    if (existsSync(p)) h.update(readFileSync(p));
    h.update('\0');
  }
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.safetensors')).sort()) {
    const fd = openSync(join(dir, name), 'r');
    try {
      const size = fstatSync(fd).size;
      h.update(`${name}\0${size}\0`);
      const head = Buffer.alloc(Math.min(SAMPLE, size));
      readSync(fd, head, 0, head.length, 0);
      const tail = Buffer.alloc(Math.min(SAMPLE, size));
      readSync(fd, tail, 0, tail.length, size - tail.length);
      h.update(head).update(tail);
    } finally {
      closeSync(fd);
    }
  }
  return { family, id: h.digest('hex') };
}
