// npx tsx scripts/mistakes-to-pairs.ts <eval report.json> <rows.jsonl> <pairs.jsonl> [first line] [last line]:
// preference pairs from a
// model's own mistakes, for `vlmkit train dpo`. Each row the model got wrong in `vlmkit eval` becomes one pair in
// TRL's conversational form: the row's question (with its image) as the prompt, the reference answer as chosen,
// the model's own answer as rejected. Rows whose answer was right give no pair (DPO needs two different answers).
import { readFileSync, writeSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { writeFileAtomic } from '../src/io/safetensors-write.js';
import type { EvalReport } from '../src/eval/runner.js';

const [reportPath, rowsPath, outPath, firstArg, lastArg] = process.argv.slice(2);
if (!reportPath || !rowsPath || !outPath) throw new Error('usage: npx tsx scripts/mistakes-to-pairs.ts <eval report.json> <rows.jsonl> <pairs.jsonl> [first line] [last line]');
// the rows (1-based lines of rows.jsonl, both ends included) whose mistakes are taken: one evaluation can give a
// training set and a held-out set of pairs from disjoint rows
const first = firstArg ? Number(firstArg) : 1, last = lastArg ? Number(lastArg) : Infinity;
if (!Number.isInteger(first) || first < 1 || !(last >= first)) throw new Error(`the line range must be whole numbers first <= last, got ${firstArg} ${lastArg}`);
const report = JSON.parse(readFileSync(reportPath, 'utf8')) as EvalReport;
const lines = readFileSync(rowsPath, 'utf8').split('\n');

interface Part { type: string; text?: string }
interface Row { messages: { role: string; content: Part[] }[]; images: string[]; category?: string; answer?: string }
const text = (s: string) => [{ type: 'text', text: s }];
const out: string[] = [];
let same = 0;
let seen = 0;
for (const w of report.wrong) {
  const line = Number(w.line);
  if (line < first || line > last) continue;
  seen++;
  const row = JSON.parse(lines[line - 1]!) as Row;
  const chosen = String(row.answer ?? w.references[0]);
  const rejected = String(w.prediction).trim();
  // an empty answer or one equal to the reference after trimming is not a preference (train dpo refuses it)
  if (!rejected || rejected === chosen) { same++; continue; }
  const prompt = row.messages.slice(0, -1);
  out.push(JSON.stringify({
    prompt, chosen: [{ role: 'assistant', content: text(chosen) }], rejected: [{ role: 'assistant', content: text(rejected) }],
    // image paths are relative to the JSONL file that names them: from the rows' folder to the pairs' folder
    images: row.images.map((im) => (isAbsolute(im) ? im : relative(dirname(outPath), join(dirname(rowsPath), im)))), category: row.category,
  }));
}
writeFileAtomic(outPath, (fd) => writeSync(fd, out.join('\n') + '\n'));
console.log(`${outPath}: ${out.length} pairs from ${seen} wrong answers in lines ${first}-${Number.isFinite(last) ? last : report.rows} of ${report.rows} rows${same ? ` (${same} without a usable answer left out)` : ''}`);
