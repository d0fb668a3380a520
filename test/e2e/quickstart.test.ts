// The README's quick start, as written: its first command is `bash scripts/setup.sh && <run>`, and this test runs
// <run> exactly as the README spells it (through npx, in the repository root, after setup.sh has run: .ci/run
// calls setup.sh before the tests). The second command must be the test command, `npm test`.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The first fenced block under "## Quick start", as its lines. */
function quickStart(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Quick start'));
  assert.ok(section, 'README.md has no "## Quick start" section');
  const block = /```sh\n([\s\S]*?)```/.exec(section);
  assert.ok(block, 'the quick start has no ```sh block');
  return block[1].trim().split('\n').map((l) => l.trim());
}

describe('README quick start', () => {
  it('is two commands: setup.sh then the main job, and the test command', () => {
    const lines = quickStart();
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0], /^bash scripts\/setup\.sh && \S/);
    assert.equal(lines[1], 'npm test');
    const ci = readFileSync(join(ROOT, '.ci', 'run'), 'utf8');
    assert.match(ci, /scripts\/setup\.sh/, '.ci/run must install through the README\'s setup script');
    assert.match(ci, /npm test/, '.ci/run must call the README\'s test command');
  });

  it('its main job runs as written and answers every question', () => {
    const run = quickStart()[0].replace(/^bash scripts\/setup\.sh && /, '');
    // the demo writes its picture into the working directory: keep a user's own copy out of harm's way
    const picture = join(ROOT, 'demo-boxes.png');
    const saved = `${picture}.before-test`;
    if (existsSync(picture)) renameSync(picture, saved);
    try {
      const r = spawnSync('sh', ['-c', run], { cwd: ROOT, encoding: 'utf8', timeout: 180_000, env: { ...process.env, VLMKIT_DEBUG: '' } });
      assert.equal(r.status, 0, `\`${run}\` exited ${r.status} (signal ${r.signal}): ${r.stderr}`);
      const questions = r.stdout.match(/^Q: /gm)?.length ?? 0;
      const answers = r.stdout.match(/^A: \S/gm)?.length ?? 0;
      assert.ok(questions >= 5, `the demo asked ${questions} questions:\n${r.stdout}`);
      assert.equal(answers, questions, `every question gets a non-empty answer:\n${r.stdout}`);
      assert.match(r.stderr, new RegExp(`^${questions} answers in [0-9.]+ s with the built-in model`, 'm'));
      assert.ok(existsSync(picture), 'the demo wrote demo-boxes.png');
    } finally {
      rmSync(picture, { force: true });
      if (existsSync(saved)) renameSync(saved, picture);
    }
  });
});
