// Chat templates: find a checkpoint's Jinja chat template and render conversations with @huggingface/jinja
// (which, like transformers, compiles with trim_blocks + lstrip_blocks and provides raise_exception/strftime_now).
//
// Where the template comes from, first match wins (the order transformers 5 reads a processor directory in):
//   1. chat_template.jinja                      (transformers >= 4.50 / 5.x save_pretrained)
//   2. chat_template.json   {"chat_template": "..."}   (SmolVLM checkpoints on the Hub, transformers 4.x)
//   3. tokenizer_config.json "chat_template": a string, or a list of {name, template} (named templates)
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { VlmkitError } from '../errors.js';
import { ModelDir } from '../io/model-dir.js';

export interface TextPart {
  type: 'text';
  text: string;
}
export interface ImagePart {
  type: 'image';
  [key: string]: unknown;
}
export interface VideoPart {
  type: 'video';
  [key: string]: unknown;
}
export type ContentPart = TextPart | ImagePart | VideoPart;

/** A message in transformers' chat form. */
export interface ChatMessage {
  role: string;
  content: string | ContentPart[];
  [key: string]: unknown;
}

export interface ChatTemplateSource {
  template: string;
  /** file the template was read from (or a description when passed in directly) */
  source: string;
}

export interface RenderOptions {
  /** Append the assistant prefix (`Assistant:` for SmolVLM). Default false, as in transformers. */
  addGenerationPrompt?: boolean;
  /** bos_token, eos_token, pad_token, unk_token, ... made visible to the template. */
  specialTokens?: Record<string, string | null | undefined>;
  /** Any other template variables (tools, documents, num_frames, fps, ...). */
  variables?: Record<string, unknown>;
  /**
   * 'parts' (default): a string content becomes [{type:'text', text}] before rendering, because SmolVLM/Idefics3
   * templates iterate over content parts and would silently drop a plain string. 'asis': pass content unchanged
   * (for text-only templates that expect strings).
   */
  content?: 'parts' | 'asis';
}

/**
 * The template transformers' SmolVLMProcessor substitutes when a conversation contains a video and the caller
 * gave no template of its own (older SmolVLM templates did not know the video part). Same prompt format.
 */
export const SMOLVLM_VIDEO_CHAT_TEMPLATE =
  "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}" +
  "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}" +
  "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}" +
  "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}" +
  "{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

function templateError(message: string): VlmkitError {
  return new VlmkitError('E_TEMPLATE', message);
}


/** Picks one template from a string, a list of {name, template} or a {name: template} dict; null if absent. */
function pickNamed(value: unknown, source: string, name: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return name === 'default' ? value : null;
  const named = new Map<string, string>();
  if (Array.isArray(value)) {
    for (const e of value) {
      const n = (e as { name?: unknown })?.name;
      const t = (e as { template?: unknown })?.template;
      if (typeof n === 'string' && typeof t === 'string') named.set(n, t);
    }
  } else if (typeof value === 'object') {
    for (const [n, t] of Object.entries(value as Record<string, unknown>)) if (typeof t === 'string') named.set(n, t);
  } else {
    throw templateError(`${source}: chat_template must be a string or a list of {name, template}; fix that file`);
  }
  return named.get(name) ?? null;
}

/**
 * Finds the chat template of a model directory, or null when it has none. `name` selects a named template
 * (additional_chat_templates/NAME.jinja, or an entry of a {name, template} list); the default is "default".
 */
export function findChatTemplate(dir: string | ModelDir, opts: { name?: string } = {}): ChatTemplateSource | null {
  const md = ModelDir.of(dir);
  const name = opts.name ?? 'default';
  const candidates: string[] = [];
  if (name === 'default') candidates.push(md.path('chat_template.jinja'));
  else candidates.push(join(md.dir, 'additional_chat_templates', `${name}.jinja`));
  for (const f of candidates) if (existsSync(f)) return { template: readFileSync(f, 'utf8'), source: f };
  for (const file of ['chat_template.json', 'tokenizer_config.json'] as const) {
    const v = md.json(file);
    const f = md.path(file);
    const t = pickNamed(v?.chat_template, f, name);
    if (t !== null) return { template: t, source: f };
  }
  return null;
}

/** Like findChatTemplate, but a missing template is a VlmkitError ('E_TEMPLATE') that says where it looked and the fix. */
export function loadChatTemplateSource(dir: string | ModelDir, opts: { name?: string } = {}): ChatTemplateSource {
  const found = findChatTemplate(dir, opts);
  if (found) return found;
  throw templateError(
    `no chat template${opts.name && opts.name !== 'default' ? ` named "${opts.name}"` : ''} in ${typeof dir === 'string' ? dir : dir.dir} (looked for chat_template.jinja, chat_template.json and ` +
      `"chat_template" in tokenizer_config.json); copy the template file from the original checkpoint into that directory ` +
      `or pass the template text explicitly`,
  );
}

function normalizeMessages(messages: readonly ChatMessage[], mode: 'parts' | 'asis'): ChatMessage[] {
  if (!Array.isArray(messages)) throw templateError('messages must be an array of {role, content}; wrap a single message in [ ]');
  return messages.map((m, i) => {
    if (!m || typeof m !== 'object' || typeof m.role !== 'string') {
      throw templateError(`message ${i} has no string "role"; every message needs {role, content}`);
    }
    if (typeof m.content === 'string') {
      return mode === 'parts' ? { ...m, content: [{ type: 'text', text: m.content }] } : { ...m };
    }
    const parts: unknown = m.content;
    if (!Array.isArray(parts)) {
      throw templateError(`message ${i} (${m.role}) has content that is neither a string nor a list of parts; use {type:'text', text} / {type:'image'} parts`);
    }
    for (const [j, p] of (parts as ContentPart[]).entries()) {
      if (!p || typeof p !== 'object' || typeof p.type !== 'string') {
        throw templateError(`message ${i} (${m.role}) part ${j} has no "type"; use {type:'text', text}, {type:'image'} or {type:'video'}`);
      }
      if (p.type === 'text' && typeof (p as TextPart).text !== 'string') {
        throw templateError(`message ${i} (${m.role}) part ${j} is a text part without a string "text"`);
      }
    }
    return { ...m, content: (parts as ContentPart[]).map((p) => ({ ...p })) };
  });
}

/** A compiled chat template. */
export class ChatTemplate {
  readonly source: string;
  readonly text: string;
  private readonly compiled: Template;

  constructor(template: string, source = 'the given chat template') {
    this.text = template;
    this.source = source;
    try {
      this.compiled = new Template(template);
    } catch (e) {
      throw templateError(`chat template from ${source} does not parse: ${(e as Error).message}; fix the template`);
    }
  }

  static fromDir(dir: string | ModelDir, opts: { name?: string } = {}): ChatTemplate {
    const s = loadChatTemplateSource(dir, opts);
    return new ChatTemplate(s.template, s.source);
  }

  render(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    const vars: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(opts.specialTokens ?? {})) if (v !== undefined && v !== null) vars[k] = v;
    Object.assign(vars, opts.variables ?? {});
    vars.messages = normalizeMessages(messages, opts.content ?? 'parts');
    vars.add_generation_prompt = opts.addGenerationPrompt ?? false;
    try {
      return this.compiled.render(vars);
    } catch (e) {
      throw templateError(`rendering the chat template from ${this.source} failed: ${(e as Error).message}; check the messages' roles and parts`);
    }
  }
}

/** One-shot render of a template string. */
export function renderChatTemplate(template: string, messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
  return new ChatTemplate(template).render(messages, opts);
}

/** True when any message has a {type:'video'} part. */
export function hasVideo(messages: readonly ChatMessage[]): boolean {
  return messages.some((m) => Array.isArray(m.content) && m.content.some((p) => p?.type === 'video'));
}

/** Counts {type:'image'} and {type:'video'} parts. */
export function countMedia(messages: readonly ChatMessage[]): { images: number; videos: number } {
  let images = 0;
  let videos = 0;
  for (const m of messages) {
    if (!Array.isArray(m.content)) continue;
    for (const p of m.content) {
      if (p?.type === 'image') images++;
      else if (p?.type === 'video') videos++;
    }
  }
  return { images, videos };
}
