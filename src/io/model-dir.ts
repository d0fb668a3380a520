// Hugging Face checkpoint directories: config.json plus weights in one model.safetensors or in shards listed by
// model.safetensors.index.json ({"weight_map": {tensor name: shard file}}). Tensors are read lazily, one at a
// time; nothing here knows a model architecture (the name maps live in src/models/<family>/weights.ts).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FileFormatError, VlmkitError } from '../errors.js';
import { type RawTensor, type SafetensorsDType, SafetensorsFile } from './safetensors.js';

export type Json = Record<string, unknown>;

/** Reads and parses a JSON file; a missing or malformed file is a FileFormatError naming it and `what` it is. */
export function readJsonFile(path: string, what: string): Json {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new FileFormatError(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? e}; check the path`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FileFormatError(`${what} ${path} is not valid JSON (${(e as Error).message}); re-download it`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FileFormatError(`${what} ${path} must hold a JSON object`);
  return v as Json;
}

/** Where one tensor lives. */
export interface CheckpointTensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** the safetensors file that holds it */
  file: string;
}

/** Throws a VlmkitError('E_MODEL_DIR') unless `dir` is an existing directory. */
export function assertModelDir(dir: string): void {
  let isDir: boolean | null = null; // null: nothing there
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    isDir = null;
  }
  if (isDir) return;
  const what = isDir === null ? 'does not exist' : 'is a file, not a directory';
  throw new VlmkitError('E_MODEL_DIR', `model directory ${dir} ${what}; give the path of a downloaded Hugging Face checkpoint (the folder with config.json and *.safetensors)`);
}

/**
 * An open checkpoint directory: its config.json and the tensors of all its safetensors files. Call close() when
 * the weights are loaded (file descriptors stay open until then).
 */
export class Checkpoint {
  readonly dir: string;
  readonly config: Json;
  /** the safetensors files, in the order found */
  readonly files: readonly string[];
  private readonly owner = new Map<string, SafetensorsFile>();
  private readonly opened: SafetensorsFile[];

  private constructor(dir: string, config: Json, opened: SafetensorsFile[], owner: Map<string, SafetensorsFile>) {
    this.dir = dir;
    this.config = config;
    this.opened = opened;
    this.owner = owner;
    this.files = opened.map((f) => f.path);
  }

  static open(dir: string): Checkpoint {
    assertModelDir(dir);
    const cfgPath = join(dir, 'config.json');
    if (!existsSync(cfgPath)) throw new VlmkitError('E_MODEL_DIR', `${dir} has no config.json; it is not a Hugging Face model directory (download the whole repository, not just the weights)`);
    const config = readJsonFile(cfgPath, 'model config');
    const single = join(dir, 'model.safetensors');
    const index = join(dir, 'model.safetensors.index.json');
    const opened: SafetensorsFile[] = [];
    const owner = new Map<string, SafetensorsFile>();
    try {
      if (existsSync(index)) {
        const idx = readJsonFile(index, 'safetensors index');
        const map = idx.weight_map;
        if (typeof map !== 'object' || map === null || Array.isArray(map))
          throw new FileFormatError(`safetensors index ${index} has no "weight_map" object; re-download it`);
        const byFile = new Map<string, SafetensorsFile>();
        for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
          if (typeof shard !== 'string' || shard.includes('..') || shard.startsWith('/'))
            throw new FileFormatError(`safetensors index ${index}: tensor "${name}" maps to an invalid shard ${JSON.stringify(shard)}`);
          let f = byFile.get(shard);
          if (!f) {
            const p = join(dir, shard);
            if (!existsSync(p)) throw new FileFormatError(`shard ${shard} listed in ${index} is missing from ${dir}; download every shard`);
            f = SafetensorsFile.open(p);
            byFile.set(shard, f);
            opened.push(f);
          }
          if (!f.has(name)) throw new FileFormatError(`tensor "${name}" is listed in ${index} under ${shard} but that file does not hold it; re-download the checkpoint`);
          owner.set(name, f);
        }
      } else if (existsSync(single)) {
        const f = SafetensorsFile.open(single);
        opened.push(f);
        for (const n of f.names()) owner.set(n, f);
      } else {
        const hasBin = existsSync(join(dir, 'pytorch_model.bin')) || existsSync(join(dir, 'pytorch_model.bin.index.json'));
        throw new VlmkitError('E_MODEL_DIR', `${dir} has no model.safetensors or model.safetensors.index.json` +
          (hasBin ? ' (only PyTorch .bin weights, which vlmkit does not read; convert them to safetensors)' : '; download the weights too'));
      }
    } catch (e) {
      for (const f of opened) f.close();
      throw e;
    }
    return new Checkpoint(dir, config, opened, owner);
  }

  names(): string[] {
    return [...this.owner.keys()];
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  /** The first of `candidates` that the checkpoint holds, or null. */
  find(candidates: readonly string[]): string | null {
    for (const c of candidates) if (this.owner.has(c)) return c;
    return null;
  }

  info(name: string): CheckpointTensorInfo {
    const f = this.owner.get(name);
    if (!f) throw new FileFormatError(`tensor "${name}" is not in the checkpoint ${this.dir}`);
    const i = f.info(name);
    return { name, dtype: i.dtype, shape: i.shape.slice(), file: f.path };
  }

  read(name: string): RawTensor {
    const f = this.owner.get(name);
    if (!f) throw new FileFormatError(`tensor "${name}" is not in the checkpoint ${this.dir}`);
    return f.read(name);
  }

  close(): void {
    for (const f of this.opened) f.close();
  }
}
