// The JSON prefix checker of constrained decoding: valid prefixes pass byte by byte, invalid ones fail at the
// first byte that cannot continue an object, closingBytes is the length of a real completion, and a random
// search agrees with JSON.parse on what a complete object is.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { JsonPrefix, MAX_DEPTH, MAX_WHITESPACE_RUN } from '../../src/generate/json-prefix.js';

const enc = new TextEncoder();
function accepts(text: string | Uint8Array): boolean {
  return new JsonPrefix().pushBytes(typeof text === 'string' ? enc.encode(text) : text);
}
function state(text: string): JsonPrefix {
  const s = new JsonPrefix();
  assert.ok(s.pushBytes(enc.encode(text)), `a valid prefix: ${text}`);
  return s;
}

describe('JsonPrefix', () => {
  it('accepts every prefix of valid objects, and marks only the whole one done', () => {
    const docs = [
      '{}',
      ' {"a": 1}',
      '{"a":[1,-2.5e+3,0,0.25,1E9,true,false,null,{"b":{}},[]],"c":"x"}',
      '{"s": "quote \\" slash \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9\\uD83D\\uDE00"}',
      '{"unicode": "héllo ✓ 😀 中文"}',
      '{\n  "pretty": [\n    1,\n    2\n  ]\n}',
      '{"n":-0,"m":0e1,"k":123.456E-7}',
    ];
    for (const d of docs) {
      JSON.parse(d); // the fixtures themselves are valid
      const bytes = enc.encode(d);
      const s = new JsonPrefix();
      bytes.forEach((b, i) => {
        assert.ok(s.push(b), `byte ${i} of ${d}`);
        assert.equal(s.done, i === bytes.length - 1, `done only at the end of ${d} (byte ${i})`);
      });
      assert.equal(s.push(0x20), false, 'nothing follows the object, not even whitespace');
    }
  });

  it('refuses invalid prefixes at the first bad byte', () => {
    const bad: [string, string][] = [
      ['[', 'the top level is an object'],
      ['"a"', 'the top level is an object'],
      ['1', 'the top level is an object'],
      ['{a', 'keys are strings'],
      ['{"a" 1', 'a colon after the key'],
      ['{"a":}', 'a value after the colon'],
      ['{"a":1,}', 'no trailing comma'],
      ['{"a":01', 'no leading zeros'],
      ['{"a":1.}', 'digits after the point'],
      ['{"a":1e}', 'digits in the exponent'],
      ['{"a":-}', 'digits after the minus'],
      ['{"a":+1', 'no plus sign'],
      ['{"a":tru}', 'literals in full'],
      ['{"a":nulL', 'literals are lowercase'],
      ['{"a":"\\x"', 'only JSON escapes'],
      ['{"a":"\\u12G', 'four hex digits'],
      ['{"a":"\n"', 'no raw control characters in strings'],
      ['{"a":[1}', 'closers match'],
      ['{"a":1]', 'closers match'],
      ['{}}', 'nothing after the object'],
      ['{},', 'nothing after the object'],
      ['{"a":1 2', 'a comma between values'],
    ];
    for (const [text, why] of bad) assert.equal(accepts(text), false, `${JSON.stringify(text)}: ${why}`);
  });

  it('checks UTF-8 inside strings', () => {
    const pre = enc.encode('{"a":"');
    const with_ = (...b: number[]) => Uint8Array.from([...pre, ...b]);
    assert.ok(accepts(with_(0xc3, 0xa9)), 'é');
    assert.ok(accepts(with_(0xf0, 0x9f, 0x98, 0x80)), 'an emoji');
    assert.ok(accepts(with_(0xe4, 0xb8)), 'half a character is still a prefix');
    assert.equal(accepts(with_(0xc0, 0x80)), false, 'overlong');
    assert.equal(accepts(with_(0xed, 0xa0, 0x80)), false, 'a surrogate');
    assert.equal(accepts(with_(0xf4, 0x90, 0x80, 0x80)), false, 'past U+10FFFF');
    assert.equal(accepts(with_(0x80)), false, 'a lone continuation byte');
    assert.equal(accepts(with_(0xc3, 0x22)), false, 'a quote inside a character');
    assert.equal(accepts(with_(0xff)), false, 'never a UTF-8 byte');
  });

  it('bounds whitespace runs and nesting', () => {
    assert.ok(accepts('{' + ' '.repeat(MAX_WHITESPACE_RUN)));
    assert.equal(accepts('{' + ' '.repeat(MAX_WHITESPACE_RUN + 1)), false);
    assert.ok(accepts('{"a":' + ' '.repeat(MAX_WHITESPACE_RUN) + '1' + ' '.repeat(MAX_WHITESPACE_RUN)), 'the run count starts over after a value');
    assert.ok(accepts('{"a":' + '['.repeat(MAX_DEPTH - 1)));
    assert.equal(accepts('{"a":' + '['.repeat(MAX_DEPTH)), false);
  });

  it('closingBytes is the length of the shortest completion', () => {
    const cases: [string, string][] = [
      ['', '{}'],
      ['{', '}'],
      ['{"ke', 'y":0}'.slice(1)],
      ['{"k"', ':0}'],
      ['{"k":', '0}'],
      ['{"k":[', ']}'],
      ['{"k":[1,', '0]}'],
      ['{"k":-', '0}'],
      ['{"k":1.', '0}'],
      ['{"k":1e+', '0}'],
      ['{"k":12', '}'],
      ['{"k":t', 'rue}'],
      ['{"k":"\\', 'n"}'],
      ['{"k":"\\u1', '234"}'],
      ['{"k":{"a":1,', '"":0}}'],
      ['{"k":"', '"}'],
    ];
    for (const [prefix, rest] of cases) {
      const s = state(prefix);
      assert.equal(s.closingBytes(), rest.length, `after ${JSON.stringify(prefix)}`);
      JSON.parse(prefix + rest);
      assert.ok(s.pushBytes(enc.encode(rest)) && s.done, `${JSON.stringify(prefix + rest)} completes it`);
    }
    const mid = new JsonPrefix();
    assert.ok(mid.pushBytes(Uint8Array.from([...enc.encode('{"k":"'), 0xe4])));
    assert.equal(mid.closingBytes(), 2 + 2, 'two continuation bytes, the quote, the brace');
  });

  it('agrees with JSON.parse on random byte strings from a JSON alphabet', () => {
    const alphabet = ['}', '}', '}', '"', '"', ']', ']', '{', '}', '[', ']', '"', ':', ',', ' ', '1', '0', '-', '.', 'e', 'a', '\\', 'n', 'u', 't', 'r', 'l', 'f', 's'];
    let seed = 12345;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    let complete = 0;
    for (let trial = 0; trial < 5000; trial++) {
      let text = '{';
      const s = state(text);
      for (let i = 0; i < 16 && !s.done; i++) {
        const ch = alphabet[rand(alphabet.length)]!;
        const c = s.clone();
        if (!c.push(ch.charCodeAt(0))) continue; // the checker says no: try another byte
        text += ch;
        s.push(ch.charCodeAt(0));
      }
      let parses = true;
      try {
        const v = JSON.parse(text);
        parses = typeof v === 'object' && v !== null && !Array.isArray(v);
      } catch {
        parses = false;
      }
      assert.equal(s.done, parses, `done must mean "parses as an object": ${JSON.stringify(text)}`);
      if (parses) complete++;
    }
    assert.ok(complete > 10, `the search reached complete objects (${complete})`);
  });
});
