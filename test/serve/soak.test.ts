// The soak test's short version (soak.ts; `npm run soak` runs it for 5 minutes): 16 clients for 20 s of mixed
// valid and malformed requests, no crash, every valid request answered, no gross leak. The server's heap settles
// for the first minute or so (RSS rose from 116 to 152 MiB over the first 60 s of a 5-minute run, then stayed at
// 147-149 MiB: 1.1% growth after the 75-s warm-up, where the 5-minute run's limit is 5%), so 20 s cannot show
// flatness: here it only catches a gross leak (RSS growth under 25% after 10 s). The 5-minute run is the real check.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { soak } from './soak.js';

describe('vlmkit serve: soak', () => {
  it('16 clients, 20 s of mixed requests: no crash, every valid request answered, no gross RSS growth', async () => {
    const r = await soak({ durationS: 20, sampleS: 1, warmupS: 10 });
    assert.equal(r.crashed, false, r.failures.join('\n'));
    assert.deepEqual(r.failures, []);
    assert.ok(r.validSent >= 16, `enough valid requests (${r.validSent})`);
    assert.equal(r.validAnswered, r.validSent);
    for (const kind of ['bad-json', 'missing-messages', 'huge-image', 'huge-pixels', 'not-an-image', 'hang-up-stream', 'hang-up-body']) assert.ok((r.sent[kind] ?? 0) > 0, `some ${kind} requests: ${JSON.stringify(r.sent)}`);
    assert.ok(r.rss.filter(([t]) => t >= 10).length >= 8, `RSS sampled after the warm-up: ${JSON.stringify(r.rss)}`);
    assert.ok(Number.isFinite(r.rssGrowth) && r.rssGrowth < 0.25, `RSS growth ${(r.rssGrowth * 100).toFixed(1)}% (${r.rssStartMiB.toFixed(1)} -> ${r.rssEndMiB.toFixed(1)} MiB): ${JSON.stringify(r.rss)}`);
  });
});
