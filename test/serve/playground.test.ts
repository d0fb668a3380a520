// The web playground in a real browser: headless Chromium (Debian's package, driven by playwright-core; nothing
// is downloaded) opens GET / on a server with the built-in model, picks assets/demo.png, asks a question and
// watches the answer stream in; the final text is the one the API gives for the same request. A grounding
// question gets its box drawn on the image where `vlmkit ask --json` puts it. Set
// VLMKIT_PLAYGROUND_SCREENSHOT=docs/playground.png to refresh the README's screenshot (the box on the picture).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { BUILTIN_MODEL_DIR, loadVlm, type Vlm } from '../../src/api.js';
import { stripLocTokens } from '../../src/eval/grounding.js';
import { defaultLimits, startServer, type RunningServer } from '../../src/serve/server.js';
import { vlmkit } from '../e2e/spawn-cli.js';
import { post, ROOT } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const DEMO = join(ROOT, 'assets', 'demo.png');
const QUESTION = 'How many circles are there?';

describe('vlmkit serve: the playground in Chromium', () => {
  let vlm: Vlm;
  let s: RunningServer;
  let browser: Browser;
  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing; run scripts/setup.sh (it installs Debian's chromium package)`);
    vlm = await loadVlm(BUILTIN_MODEL_DIR);
    s = await startServer({ vlm, modelId: 'vlmkit-shapes', limits: defaultLimits(vlm.model.maxPositions), host: '127.0.0.1', port: 0, log: () => undefined });
    // playwright-core passes --no-sandbox (chromiumSandbox defaults to false): Chromium's sandbox cannot start as
    // root or inside most containers, where these tests run
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  });
  after(async () => {
    await browser?.close();
    await s?.close();
    vlm?.dispose();
  });

  it('streams the answer to an image and a question; the final text is the API\'s', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 640 } });
    const outside: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(s.url) && !r.url().startsWith('data:')) outside.push(r.url());
    });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${s.url}/`);
    await page.locator('#model', { hasText: 'model: vlmkit-shapes' }).waitFor({ timeout: 30_000 });
    await page.setInputFiles('#file', DEMO);
    await page.locator('#preview').waitFor({ state: 'visible' });
    await page.fill('#question', QUESTION);
    await page.fill('#temperature', '0');
    await page.fill('#max-tokens', '32');
    // every text the raw answer shows on its way (the stream as it arrives; the answer box shows it without
    // location tokens, trimmed), as the page sees it (page code as text: this project's TypeScript has no DOM types)
    await page.evaluate(`(() => {
      const box = document.getElementById('raw');
      window.seen = [];
      new MutationObserver(() => window.seen.push(box.textContent)).observe(box, { childList: true, characterData: true, subtree: true });
    })()`);
    await page.click('#send');
    await page.locator('#answer[data-state="done"], #answer[data-state="error"]').waitFor({ timeout: 120_000 });
    assert.equal(await page.getAttribute('#answer', 'data-state'), 'done', await page.textContent('#error') ?? '');
    const final = (await page.textContent('#raw')) ?? '';
    const seen = (await page.evaluate('window.seen')) as string[];
    const partials = [...new Set(seen.filter((t) => t !== ''))];
    assert.ok(partials.length >= 2, `the answer arrived in pieces: ${JSON.stringify(seen)}`);
    assert.ok(partials.every((t) => final.startsWith(t)), `each piece extends the last: ${JSON.stringify(partials)} -> ${JSON.stringify(final)}`);
    assert.match((await page.textContent('#stats')) ?? '', /\d+ tokens · [\d.]+ tokens\/s/);

    const api = await post(`${s.url}/v1/chat/completions`, {
      model: 'vlmkit-shapes', temperature: 0, top_p: 1, max_tokens: 32,
      messages: [{ role: 'user', content: [
        { type: 'image_url', image_url: { url: `data:image/png;base64,${readFileSync(DEMO).toString('base64')}` } },
        { type: 'text', text: QUESTION },
      ] }],
    });
    assert.equal(api.status, 200, api.text);
    // the raw text is the API's, the shown one leaves out location tokens
    assert.equal(final, api.json.choices[0].message.content);
    assert.equal(await page.textContent('#answer'), stripLocTokens(api.json.choices[0].message.content));
    assert.deepEqual(outside, [], 'the page fetched nothing beyond the server');
    assert.deepEqual(pageErrors, []);
    await page.close();
  });

  it('draws the box of a grounded answer where `vlmkit ask --json` puts it, with its label', async () => {
    const question = 'Where is the red circle?';
    const cli = await vlmkit(['ask', '--image', DEMO, '--temperature', '0', '--max-new-tokens', '32', '--json', question]);
    assert.equal(cli.code, 0, cli.stderr);
    const want = JSON.parse(cli.stdout.trim()) as { text: string; raw_text: string; boxes: { label: string; x0: number; y0: number; x1: number; y1: number }[] };
    assert.ok(want.boxes.length >= 1, `the built-in model answers with a box: ${cli.stdout}`);

    const page = await browser.newPage({ viewport: { width: 1100, height: 640 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${s.url}/`);
    await page.locator('#model', { hasText: 'model: vlmkit-shapes' }).waitFor({ timeout: 30_000 });
    await page.setInputFiles('#file', DEMO);
    await page.locator('#preview').waitFor({ state: 'visible' });
    await page.fill('#question', question);
    await page.fill('#temperature', '0');
    await page.fill('#max-tokens', '32');
    await page.click('#send');
    await page.locator('#answer[data-state="done"], #answer[data-state="error"]').waitFor({ timeout: 120_000 });
    assert.equal(await page.getAttribute('#answer', 'data-state'), 'done', await page.textContent('#error') ?? '');
    assert.equal(await page.textContent('#answer'), want.text);
    assert.equal((await page.textContent('#raw'))?.trim(), want.raw_text);

    // where each box is drawn, read back from the layout and turned into the image's own pixels
    const drawn = (await page.evaluate(`(() => {
      const img = document.getElementById('preview').getBoundingClientRect();
      const nw = document.getElementById('preview').naturalWidth, nh = document.getElementById('preview').naturalHeight;
      return [...document.querySelectorAll('#boxes .box')].map((el) => {
        const r = el.getBoundingClientRect();
        return {
          label: el.querySelector('.box-label')?.textContent ?? '', data: { ...el.dataset }, visible: r.width > 0 && r.height > 0,
          x0: (r.left - img.left) / img.width * nw, y0: (r.top - img.top) / img.height * nh,
          x1: (r.right - img.left) / img.width * nw, y1: (r.bottom - img.top) / img.height * nh,
        };
      });
    })()`)) as { label: string; data: Record<string, string>; visible: boolean; x0: number; y0: number; x1: number; y1: number }[];
    assert.equal(drawn.length, want.boxes.length, JSON.stringify(drawn));
    want.boxes.forEach((b, i) => {
      const d = drawn[i]!;
      assert.ok(d.visible, 'the box is drawn');
      assert.equal(d.label, b.label);
      assert.deepEqual({ label: d.data.label, x0: Number(d.data.x0), y0: Number(d.data.y0), x1: Number(d.data.x1), y1: Number(d.data.y1) }, b);
      for (const k of ['x0', 'y0', 'x1', 'y1'] as const) {
        const err = Math.abs(d[k] - b[k]);
        assert.ok(Number.isFinite(err) && err <= 0.1, `box ${i} ${k}: drawn at ${d[k]}, the CLI says ${b[k]}`);
      }
    });
    assert.match((await page.textContent('#stats')) ?? '', /\d+ tokens · [\d.]+ tokens\/s/);
    assert.deepEqual(pageErrors, []);
    if (process.env.VLMKIT_PLAYGROUND_SCREENSHOT) await page.screenshot({ path: process.env.VLMKIT_PLAYGROUND_SCREENSHOT });
    await page.close();
  });

  it('shows the server\'s error message', async () => {
    const page = await browser.newPage();
    await page.goto(`${s.url}/`);
    await page.locator('#model', { hasText: 'model: vlmkit-shapes' }).waitFor({ timeout: 30_000 });
    await page.fill('#question', 'hi');
    await page.fill('#max-tokens', '999999');
    await page.click('#send');
    await page.locator('#error').waitFor({ state: 'visible', timeout: 30_000 });
    assert.equal(await page.textContent('#error'), 'max_tokens 999999 is over this server\'s limit of 2048 (--max-tokens)');
    assert.equal(await page.getAttribute('#answer', 'data-state'), 'error');
    await page.close();
  });
});
