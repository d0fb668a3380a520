// Hugging Face model directories, read in this one place: the JSON files (config.json, generation_config.json,
// preprocessor_config.json, processor_config.json, tokenizer_config.json, chat_template.json), each parsed once
// by one reader whose errors name the file (ModelDir), and the weights in one model.safetensors or in shards
// listed by model.safetensors.index.json ({"weight_map": {tensor name: shard file}}), read lazily one tensor at a
// time (Checkpoint). Nothing here knows a model architecture (the name maps live in src/models/<family>/).
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

/** Like readJsonFile, but a file that is not there is null (optional files: generation_config.json, ...). */
export function readJsonIfExists(path: string, what: string): Json | null {
  return existsSync(path) ? readJsonFile(path, what) : null;
}

/** What each JSON file of a model directory is, for error messages. */
const JSON_FILES = {
  'config.json': 'model config',
  'generation_config.json': 'generation config',
  'preprocessor_config.json': 'image processor config',
  'processor_config.json': 'processor config',
  'tokenizer_config.json': 'tokenizer config',
  'tokenizer.json': 'tokenizer file',
  'chat_template.json': 'chat template file',
} as const;
export type ModelDirJson = keyof typeof JSON_FILES;

/**
 * A Hugging Face model directory. Every JSON file is read (and parsed) at most once, on first use, so a loader
 * that builds the config, the processor, the tokenizer and the generation settings reads each file once. `json`
 * is null for an optional file that is not there; `requireJson` makes a missing file an error naming it.
 */
export class ModelDir {
  readonly dir: string;
  private readonly cache = new Map<ModelDirJson, Json | null>();

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Opens `dir` (or passes an open ModelDir through); a missing directory is a VlmkitError('E_MODEL_DIR'). */
  static of(dir: string | ModelDir): ModelDir {
    if (dir instanceof ModelDir) return dir;
    assertModelDir(dir);
    return new ModelDir(dir);
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  has(name: string): boolean {
    return existsSync(this.path(name));
  }

  json(name: ModelDirJson): Json | null {
    if (!this.cache.has(name)) this.cache.set(name, readJsonIfExists(this.path(name), JSON_FILES[name]));
    return this.cache.get(name)!;
  }

  requireJson(name: ModelDirJson, fix: string): Json {
    const j = this.json(name);
    if (!j) throw new FileFormatError(`no ${name} in ${this.dir}; ${fix}`);
    return j;
  }

  /** config.json: required (a directory without it is not a Hugging Face model directory). */
  config(): Json {
    if (!this.has('config.json')) throw new VlmkitError('E_MODEL_DIR', `${this.dir} has no config.json; it is not a Hugging Face model directory (download the whole repository, not just the weights)`);
    return this.json('config.json')!;
  }
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
/**
 * Whether a file of a model folder travels with a rewritten copy of the model (a merged or quantized checkpoint):
 * config, tokenizer, processor and generation files do; weights, their index, an adapter's config and hidden
 * files do not.
 */
export function isModelSideFile(name: string): boolean {
  if (name.startsWith('.')) return false;
  if (/\.(safetensors|bin|pt|pth|gguf|ckpt|h5|msgpack|onnx)$/i.test(name)) return false;
  if (name === 'model.safetensors.index.json' || name === 'pytorch_model.bin.index.json') return false;
  if (name === 'adapter_config.json') return false;
  return true;
}

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

  static open(from: string | ModelDir): Checkpoint {
    const md = ModelDir.of(from);
    const dir = md.dir;
    const config = md.config();
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

  /** The "__metadata__" strings of the safetensors file that holds `name`. */
  metadataOf(name: string): Record<string, string> {
    const f = this.owner.get(name);
    if (!f) throw new FileFormatError(`tensor "${name}" is not in the checkpoint ${this.dir}`);
    return f.metadata;
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
