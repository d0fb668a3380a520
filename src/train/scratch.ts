// Training from a random initialisation (`--init random`): the run builds its model from a config.json and takes
// the tokenizer, chat template and processor files from a folder. Both are staged together in <out>/base/, a
// model directory without weights, so that everything later reads one place: the processor, a resumed run, and
// the final save, which copies these files next to model.safetensors into a complete Hugging Face checkpoint.
import { copyFileSync, existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VlmkitError } from '../errors.js';
import { type Json, readJsonFile } from '../io/model-dir.js';
import { writeDirAtomic } from '../io/safetensors-write.js';
import { type ModelConfig, type ModelFamily, type Processor, modelConfigFromJson } from '../models/index.js';

/** The files of a model directory besides config.json and the weights that --tokenizer provides. */
export const TOKENIZER_FILES = [
  'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'vocab.json', 'merges.txt',
  'chat_template.jinja', 'chat_template.json', 'processor_config.json', 'preprocessor_config.json', 'generation_config.json',
] as const;

/** The dtype a run saves its weights in. */
export type SaveDtype = 'f32' | 'bf16' | 'f16';

const TORCH_DTYPE: Record<SaveDtype, string> = { f32: 'float32', bf16: 'bfloat16', f16: 'float16' };

export interface ScratchSource {
  /** the config.json to build (default: <tokenizer>/config.json) */
  modelConfig?: string | null;
  /** the folder with the tokenizer, chat template and processor files */
  tokenizer?: string | null;
}

export interface ScratchModel {
  /** the parsed config.json as it will be saved */
  json: Json;
  family: ModelFamily;
  config: ModelConfig;
  /** where config.json was read */
  configPath: string;
  tokenizerDir: string;
}

const argsError = (msg: string) => new VlmkitError('E_ARGS', msg);

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Reads and checks the config and the tokenizer folder of a from-scratch run; writes nothing. */
export function readScratchSource(s: ScratchSource): ScratchModel {
  const tokenizerDir = s.tokenizer;
  if (!tokenizerDir) throw argsError('--init random needs --tokenizer DIR: the folder with tokenizer.json, tokenizer_config.json, the chat template and processor_config.json');
  if (!isDir(tokenizerDir)) throw argsError(`--tokenizer ${tokenizerDir} is not a folder; give the folder that holds tokenizer.json and the processor files`);
  if (!existsSync(join(tokenizerDir, 'tokenizer.json'))) throw argsError(`--tokenizer ${tokenizerDir} has no tokenizer.json; give the folder of the model's tokenizer files`);
  if (!existsSync(join(tokenizerDir, 'processor_config.json')) && !existsSync(join(tokenizerDir, 'preprocessor_config.json')))
    throw argsError(`--tokenizer ${tokenizerDir} has no processor_config.json (nor preprocessor_config.json); add the image processor settings (size, max_image_size, image_seq_len) there`);
  const configPath = s.modelConfig ?? join(tokenizerDir, 'config.json');
  if (!s.modelConfig && !existsSync(configPath)) throw argsError(`--init random needs --model-config FILE (the config.json of the model to build), or a config.json in --tokenizer ${tokenizerDir}`);
  const json = readJsonFile(configPath, 'model config');
  return { json, ...modelConfigFromJson(json, configPath), configPath, tokenizerDir };
}

/**
 * Writes <out>/base/: config.json (its dtype keys set to the saved dtype, so transformers loads the weights as
 * they are stored) and the tokenizer folder's files. Replaced as a whole, never half-written. Returns its path.
 */
export function stageBase(out: string, m: Pick<ScratchModel, 'json' | 'configPath' | 'tokenizerDir'>, saveDtype: SaveDtype, o: { resuming?: boolean } = {}): string {
  const dir = join(out, 'base');
  const old = join(dir, 'config.json');
  // a resume must not replace the record of what the run was built from with another model
  if (o.resuming && existsSync(old) && modelConfigHash(readJsonFile(old, 'model config')) !== modelConfigHash(m.json))
    throw new VlmkitError('E_RESUME', `cannot resume: the run in ${out} builds the model of ${old}, not that of ${m.configPath}; give the same --model-config, or start a new run in another --out`);
  const json: Json = { ...m.json, torch_dtype: TORCH_DTYPE[saveDtype] };
  // transformers 5.x names the key "dtype"
  if ('dtype' in m.json) json.dtype = TORCH_DTYPE[saveDtype];
  writeDirAtomic(dir, (tmp) => {
    for (const f of TOKENIZER_FILES) {
      const p = join(m.tokenizerDir, f);
      if (existsSync(p) && statSync(p).isFile()) copyFileSync(p, join(tmp, f));
    }
    // config.json never comes from the tokenizer folder; a plain write inside the directory renamed as a whole
    writeFileSync(join(tmp, 'config.json'), JSON.stringify(json, null, 2) + '\n');
  });
  return dir;
}

/**
 * FNV-1a of a model config with sorted keys, without its dtype keys (the saved dtype is not part of the model): the
 * same config written in another key order or saved in another dtype hashes the same.
 */
export function modelConfigHash(j: Json): string {
  const canon = (x: unknown): unknown =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.keys(x as object).sort().map((k) => [k, canon((x as Record<string, unknown>)[k])]))
      : Array.isArray(x) ? x.map(canon) : x;
  const { torch_dtype: _t, dtype: _d, ...rest } = j;
  const s = JSON.stringify(canon(rest));
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/**
 * The tokenizer and processor must describe the model being built: a mismatch would train silently on wrong
 * inputs (image features at the wrong places, tiles of another size, ids past the embedding).
 */
export function checkFilesMatchConfig(processor: Processor, m: ScratchModel): void {
  const cfg = m.config;
  const tok = processor.tokenizer;
  const where = `--tokenizer ${m.tokenizerDir} and --model-config ${m.configPath}`;
  const image = tok.specialIds.image;
  if (image !== cfg.imageTokenId)
    throw argsError(`${where} disagree: the tokenizer's <image> token has id ${image ?? '(none)'} but image_token_id is ${cfg.imageTokenId}; set image_token_id to the tokenizer's id`);
  if (tok.vocabSize > cfg.text.vocabSize)
    throw argsError(`${where} disagree: the tokenizer has ${tok.vocabSize} ids but text_config.vocab_size is ${cfg.text.vocabSize}; set vocab_size to at least ${tok.vocabSize}`);
  const img = processor.imageConfigFor();
  if (img.maxImageSize !== cfg.vision.imageSize)
    throw argsError(`${where} disagree: the processor's tiles are ${img.maxImageSize} px (max_image_size.longest_edge) but vision_config.image_size is ${cfg.vision.imageSize}; make them equal`);
  if (processor.imageSeqLen !== cfg.imageSeqLen)
    throw argsError(`${where} disagree: image_seq_len is ${processor.imageSeqLen} but the config gives (image_size / patch_size)² / scale_factor² = ${cfg.imageSeqLen} image tokens per tile; set image_seq_len to ${cfg.imageSeqLen}`);
}
