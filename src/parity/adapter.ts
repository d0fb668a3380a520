// Attaching a PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors) to a loaded model's
// linear layers, for the parity tool: y += (alpha / r) · x Aᵀ Bᵀ (alpha / sqrt(r) with rsLoRA), per-module r and
// alpha from rank_pattern / alpha_pattern; with use_dora (DoRA) each module's lora_magnitude_vector [out] rescales
// the adapted weight per output feature (models/dora.ts). Returns a function that detaches it again.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromRaw } from '../engine/index.js';
import { FileFormatError, VlmkitError } from '../errors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import type { AdaptableModel, LowRankAdapter } from '../models/index.js';

function adapterError(message: string): VlmkitError {
  return new VlmkitError('E_ADAPTER', message);
}

/** The value of a PEFT pattern dict for a module: the longest key that equals the module path or ends it. */
function patternValue(pattern: unknown, module: string): number | undefined {
  if (!pattern || typeof pattern !== 'object') return undefined;
  let best: string | undefined;
  for (const k of Object.keys(pattern as object)) {
    if ((module === k || module.endsWith('.' + k)) && (!best || k.length > best.length)) best = k;
  }
  const v = best !== undefined ? (pattern as Record<string, unknown>)[best] : undefined;
  return typeof v === 'number' ? v : undefined;
}

export function attachPeftAdapter(model: AdaptableModel, dir: string): () => void {
  const cfgPath = join(dir, 'adapter_config.json');
  const wPath = join(dir, 'adapter_model.safetensors');
  if (!existsSync(cfgPath) || !existsSync(wPath)) {
    throw adapterError(`${dir} is not a PEFT adapter directory: it needs adapter_config.json and adapter_model.safetensors`);
  }
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new FileFormatError(`${cfgPath} is not valid JSON (${(e as Error).message})`);
  }
  if (cfg.peft_type !== undefined && cfg.peft_type !== 'LORA') throw adapterError(`${cfgPath}: peft_type ${JSON.stringify(cfg.peft_type)} is not supported (LoRA only)`);
  const dora = cfg.use_dora === true;
  const r0 = typeof cfg.r === 'number' ? cfg.r : 8;
  const alpha0 = typeof cfg.lora_alpha === 'number' ? cfg.lora_alpha : 8;
  const rs = cfg.use_rslora === true;
  const linears = model.linears();
  const f = SafetensorsFile.open(wPath);
  const added: { list: LowRankAdapter[]; ad: LowRankAdapter }[] = [];
  const detach = () => {
    for (const { list, ad } of added) {
      const i = list.indexOf(ad);
      if (i >= 0) list.splice(i, 1);
      ad.a.dispose();
      ad.b.dispose();
      ad.magnitude?.dispose();
      ad.normCache?.dispose();
    }
    added.length = 0;
  };
  try {
    for (const name of f.names()) {
      const m = /^(?:base_model\.model\.)?(.*)\.lora_A(?:\.[^.]+)?\.weight$/.exec(name);
      if (!m) continue;
      const module = m[1]!;
      const lin = linears.get(module) ?? linears.get(module.replace(/^model\./, '')) ?? linears.get('model.' + module);
      if (!lin) {
        throw adapterError(`adapter module ${module} is not a linear layer of this model; the adapter was trained for another model (check base_model_name_or_path in ${cfgPath})`);
      }
      const bName = name.replace('lora_A', 'lora_B');
      if (!f.has(bName)) throw adapterError(`${wPath} has ${name} but no ${bName}; re-save the adapter`);
      const a = fromRaw(f.read(name), { dtype: 'f32', backend: lin.w.backend });
      const b = fromRaw(f.read(bName), { dtype: 'f32', backend: lin.w.backend });
      const r = patternValue(cfg.rank_pattern, module) ?? a.shape[0] ?? r0;
      const alpha = patternValue(cfg.alpha_pattern, module) ?? alpha0;
      if (a.shape[1] !== lin.w.shape[1] || b.shape[0] !== lin.w.shape[0] || a.shape[0] !== b.shape[1]) {
        a.dispose();
        b.dispose();
        throw adapterError(`adapter ${module}: A ${JSON.stringify(a.shape)} / B ${JSON.stringify(b.shape)} do not fit the layer's weight ${JSON.stringify(lin.w.shape)}; the adapter was trained for another model`);
      }
      const ad: LowRankAdapter = { a, b, scale: rs ? alpha / Math.sqrt(r) : alpha / r };
      if (dora) {
        const mName = name.replace(/\.lora_A(?:\.[^.]+)?\.weight$/, '.lora_magnitude_vector');
        if (!f.has(mName)) {
          a.dispose();
          b.dispose();
          throw adapterError(`${cfgPath} says use_dora but ${wPath} has no ${mName}; re-save the adapter`);
        }
        const m = fromRaw(f.read(mName), { dtype: 'f32', backend: lin.w.backend });
        if (m.rank !== 1 || m.shape[0] !== lin.w.shape[0]) {
          for (const t of [a, b, m]) t.dispose();
          throw adapterError(`${wPath}: ${mName} has shape ${JSON.stringify(m.shape)} but ${module} has ${lin.w.shape[0]} output features; the adapter was trained for another model`);
        }
        ad.magnitude = m;
      }
      const list = (lin.adapters ??= []);
      list.push(ad);
      added.push({ list, ad });
    }
  } catch (e) {
    detach();
    throw e;
  } finally {
    f.close();
  }
  if (added.length === 0) throw adapterError(`${wPath} holds no lora_A/lora_B weights`);
  return detach;
}
