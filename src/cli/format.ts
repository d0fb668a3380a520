// Human-readable bits of CLI output: timings, counts, sizes.
import type { GenerationTimings } from '../generate/types.js';

function rate(n: number, ms: number): string {
  return ms > 0 && n > 0 ? `${((n / ms) * 1000).toFixed(1)} tok/s` : '-';
}

/** "prefill 98 tok in 0.12 s (816.7 tok/s) · decode 7 tok in 0.05 s (140.0 tok/s) · 8 generated, eos" */
export function timingLine(t: GenerationTimings, finishReason?: string): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const parts = [
    `prefill ${t.prefillTokens} tok${t.reusedTokens ? ` (+${t.reusedTokens} cached)` : ''} in ${s(t.prefillMs)} (${rate(t.prefillTokens, t.prefillMs)})`,
    `decode ${t.decodeTokens} tok in ${s(t.decodeMs)} (${rate(t.decodeTokens, t.decodeMs)})`,
    `${t.generatedTokens} generated${finishReason ? `, ${finishReason}` : ''}`,
  ];
  return parts.join(' · ');
}

/** Collapses runs of one special token: "<image><image><image>" -> "<image>×3". */
export function collapseRuns(text: string, token = '<image>'): string {
  const esc = token.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return text.replace(new RegExp(`(?:${esc}){2,}`, 'g'), (m) => `${token}×${m.length / token.length}`);
}

/** Strips leading whitespace from a stream of pieces until the first visible character. */
export function leadingTrimmer(): (piece: string) => string {
  let started = false;
  return (p) => {
    if (started) return p;
    const t = p.replace(/^\s+/, '');
    if (t) started = true;
    return t;
  };
}

/** Timings with snake_case keys, for --json output. */
export function timingsJson(t: GenerationTimings): Record<string, number> {
  return {
    prefill_tokens: t.prefillTokens,
    prefill_ms: t.prefillMs,
    prefill_tokens_per_s: t.prefillTokensPerSec,
    decode_tokens: t.decodeTokens,
    decode_ms: t.decodeMs,
    decode_tokens_per_s: t.decodeTokensPerSec,
    generated_tokens: t.generatedTokens,
    reused_tokens: t.reusedTokens,
    total_ms: t.totalMs,
  };
}
