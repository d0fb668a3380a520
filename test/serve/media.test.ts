// image_url sources: http(s) URLs (a local test server: an image, a 404, one too large without a length, one
// that never answers), and file:// URLs only inside --media-path (a symlink out of it is refused).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { assertApiError, dataUrl, IMAGES, MODEL_ID, post, serveTiny } from './helpers.js';
import type { RunningServer } from '../../src/serve/server.js';

const PNG = readFileSync(join(IMAGES, 'wide_90x150.png'));

describe('vlmkit serve: image URLs', () => {
  let s: RunningServer;
  let files: Server;
  let filesUrl: string;
  const tmp = mkdtempSync(join(tmpdir(), 'vlmkit-serve-media-'));
  const media = join(tmp, 'media');
  before(async () => {
    // the test's own image host
    files = createServer((req, res) => {
      if (req.url === '/a.png') return void res.end(PNG);
      if (req.url === '/huge') {
        // chunked, no content-length: the cap must cut it while it streams
        res.writeHead(200, { 'content-type': 'image/png' });
        const chunk = Buffer.alloc(64 * 1024);
        let sent = 0;
        const more = () => {
          while (sent < 64 && res.write(chunk)) sent++;
          if (sent < 64) res.once('drain', more);
          else res.end();
        };
        return void more();
      }
      if (req.url === '/slow') return; // never answers
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
    filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
    mkdirSync(media);
    copyFileSync(join(IMAGES, 'wide_90x150.png'), join(media, 'a.png'));
    copyFileSync(join(IMAGES, 'tall_200x70.png'), join(tmp, 'outside.png'));
    symlinkSync(join(tmp, 'outside.png'), join(media, 'link.png'));
    s = await serveTiny({ maxImageBytes: 50_000, fetchTimeoutMs: 500 }, { mediaPath: media });
  });
  after(async () => {
    await s.close();
    files.closeAllConnections();
    await new Promise<void>((r) => files.close(() => r()));
    rmSync(tmp, { recursive: true, force: true });
  });

  const ask = (url: string) => post(`${s.url}/v1/chat/completions`, {
    model: MODEL_ID, max_tokens: 6, temperature: 0,
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'What is this?' }] }],
  });
  const PARAM = 'messages[0].content[0].image_url.url';

  it('an http URL, a file under --media-path and a data: URL of the same image give the same answer', async () => {
    const viaData = await ask(dataUrl('wide_90x150.png'));
    assert.equal(viaData.status, 200, viaData.text);
    const viaHttp = await ask(`${filesUrl}/a.png`);
    assert.equal(viaHttp.status, 200, viaHttp.text);
    const viaFile = await ask(pathToFileURL(join(media, 'a.png')).href);
    assert.equal(viaFile.status, 200, viaFile.text);
    assert.equal(viaHttp.json.choices[0].message.content, viaData.json.choices[0].message.content);
    assert.equal(viaFile.json.choices[0].message.content, viaData.json.choices[0].message.content);
    assert.ok(viaData.json.usage.prompt_tokens > 20, 'the image is in the prompt');
  });

  it('an http error, an endless download and a silent host are 400s naming the URL', async () => {
    assertApiError(await ask(`${filesUrl}/missing.png`), 400, /missing\.png\): the image download answered HTTP 404/, PARAM);
    assertApiError(await ask(`${filesUrl}/huge`), 400, /over this server's limit of 50000 bytes/, PARAM);
    const t = Date.now();
    assertApiError(await ask(`${filesUrl}/slow`), 400, /no answer within 0\.5 s \(--fetch-timeout\)/, PARAM);
    assert.ok(Date.now() - t < 5000, 'the time-out cut the wait');
    assertApiError(await ask('http://127.0.0.1:1/nothing.png'), 400, /could not be downloaded/, PARAM);
  });

  it('refuses files outside --media-path, symlinks leading out included', async () => {
    assertApiError(await ask(pathToFileURL(join(tmp, 'outside.png')).href), 400, /outside the --media-path folder/, PARAM);
    assertApiError(await ask(pathToFileURL(join(media, 'link.png')).href), 400, /outside the --media-path folder/, PARAM);
    assertApiError(await ask(pathToFileURL(join(media, '..', 'outside.png')).href), 400, /outside the --media-path folder/, PARAM);
    assertApiError(await ask(pathToFileURL(join(media, 'nope.png')).href), 400, /no such file/, PARAM);
    assertApiError(await ask(pathToFileURL(media).href), 400, /outside the --media-path folder|not a file/, PARAM);
  });
});
