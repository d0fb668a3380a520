// The web playground in a real browser: headless Chromium (Debian's package, driven by playwright-core; nothing
// is downloaded) opens GET / on a server with the built-in model, picks assets/demo.png, asks a question and
// watches the answer stream in; the final text is the one the API gives for the same request. Set
// VLMKIT_PLAYGROUND_SCREENSHOT=docs/playground.png to refresh the README's screenshot.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { BUILTIN_MODEL_DIR, loadVlm, type Vlm } from '../../src/api.js';
import { defaultLimits, startServer, type RunningServer } from '../../src/serve/server.js';
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
    // every text the answer box shows on its way, as the page sees it
    // (page code as text: this project's TypeScript has no DOM types)
    await page.evaluate(`(() => {
      const box = document.getElementById('answer');
      window.seen = [];
      new MutationObserver(() => window.seen.push(box.textContent)).observe(box, { childList: true, characterData: true, subtree: true });
    })()`);
    await page.click('#send');
    await page.locator('#answer[data-state="done"], #answer[data-state="error"]').waitFor({ timeout: 120_000 });
    assert.equal(await page.getAttribute('#answer', 'data-state'), 'done', await page.textContent('#error') ?? '');
    const final = (await page.textContent('#answer')) ?? '';
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
    assert.equal(final, api.json.choices[0].message.content);
    assert.deepEqual(outside, [], 'the page fetched nothing beyond the server');
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
