// The parity tool's command line (scripts/parity.ts): arguments -> runParity -> one JSON line.
import { parseArgs } from 'node:util';
import { VlmkitError } from '../errors.js';
import { runParity, type ParityResult } from './run.js';

const USAGE = 'usage: npm run -s parity -- <case.safetensors> --model <dir> [--adapter <dir>] [--images <dir>] [--no-model] [--partial] [--verbose]';

/**
 * Exit codes: 0 every tensor of the case compared and matched; 1 a check failed or the input was wrong; 2 an
 * unexpected error; 3 nothing failed but some tensors were not compared (listed in `unchecked`), unless --partial
 * accepts that.
 */
export const EXIT = { ok: 0, failed: 1, unexpected: 2, unchecked: 3 } as const;

/** JSON has no NaN or Infinity (JSON.stringify writes null, which reads as "not checked"): write them as strings. */
function finiteOrString(_key: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
}

/** The fields every result line carries, in this order; failures/notes only with --verbose or when non-empty. */
function line(r: ParityResult, verbose: boolean): string {
  const o: Record<string, unknown> = {
    case: r.case,
    input_ids_equal: r.input_ids_equal,
    pixel_values_max_abs: r.pixel_values_max_abs,
    pixel_values_mean_abs: r.pixel_values_mean_abs,
    logits_rel_err: r.logits_rel_err,
    generate_equal: r.generate_equal,
    ok: r.ok,
    masks_equal: r.masks_equal,
    template_equal: r.template_equal,
    labels_equal: r.labels_equal,
    vision_rel_err: r.vision_rel_err,
    connector_rel_err: r.connector_rel_err,
    loss_rel_err: r.loss_rel_err,
    grads_max_rel_err: r.grads_max_rel_err,
    after_step_max_rel_err: r.after_step_max_rel_err,
    loss_completion_rel_err: r.loss_completion_rel_err,
    image_embeds_rel_err: r.image_embeds_rel_err,
    text_embeds_rel_err: r.text_embeds_rel_err,
    unchecked: r.unchecked,
  };
  if (verbose || r.failures.length) o.failures = r.failures;
  if (verbose || r.notes.length) o.notes = r.notes;
  return JSON.stringify(o, finiteOrString);
}

export async function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s + '\n'), err: (s: string) => void = (s) => process.stderr.write(s + '\n')): Promise<number> {
  try {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        allowPositionals: true,
        options: {
          model: { type: 'string' },
          adapter: { type: 'string' },
          images: { type: 'string' },
          'no-model': { type: 'boolean' },
          partial: { type: 'boolean' },
          verbose: { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
        },
      });
    } catch (e) {
      throw new VlmkitError('E_ARGS', `${(e as Error).message}; ${USAGE}`);
    }
    const { values, positionals } = parsed;
    if (values.help) {
      out(USAGE);
      return 0;
    }
    if (positionals.length !== 1) throw new VlmkitError('E_ARGS', `give exactly one case file; ${USAGE}`);
    if (!values.model) throw new VlmkitError('E_ARGS', `--model <dir> is required (the checkpoint the case was made with); ${USAGE}`);
    const r = await runParity(positionals[0]!, {
      model: values.model,
      adapter: values.adapter,
      images: values.images,
      noModel: values['no-model'] ?? false,
    });
    out(line(r, values.verbose ?? false));
    if (r.ok === false) return EXIT.failed;
    return r.unchecked.length > 0 && !values.partial ? EXIT.unchecked : EXIT.ok;
  } catch (e) {
    if (e instanceof VlmkitError) {
      err(`vlmkit parity: ${e.message}`);
      return EXIT.failed;
    }
    err(`vlmkit parity: unexpected error: ${(e as Error)?.stack ?? e}`);
    return EXIT.unexpected;
  }
}
