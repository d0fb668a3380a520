// Each metric against values computed by hand from its definition, with the edge cases that trip scorers up.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { anls, exactMatch, iou, levenshtein, parseNumber, relaxedAccuracy, vqaAccuracy } from '../../src/eval/metrics.js';
import { vqaNormalize } from '../../src/eval/vqa.js';

const close = (x: number, want: number, tol = 1e-12) => assert.ok(Number.isFinite(x) && Math.abs(x - want) <= tol, `${x} != ${want}`);

describe('exact match', () => {
  it('trims, ignores case and one trailing period', () => {
    assert.equal(exactMatch('  Red. ', ['red']), 1);
    assert.equal(exactMatch('two  circles', ['Two circles.']), 1);
    assert.equal(exactMatch('reds', ['red']), 0);
    assert.equal(exactMatch('3', ['three']), 0, 'no number words here');
  });
  it('empty answers: only an empty reference matches', () => {
    assert.equal(exactMatch('', ['red']), 0);
    assert.equal(exactMatch('  ', ['']), 1);
  });
  it('any of several references', () => {
    assert.equal(exactMatch('left', ['right', 'Left']), 1);
    assert.equal(exactMatch('up', ['right', 'left']), 0);
  });
});

describe('relaxed accuracy (ChartQA)', () => {
  it('numbers within 5% of the target', () => {
    assert.equal(relaxedAccuracy('105', ['100']), 1); // exactly 5%
    assert.equal(relaxedAccuracy('105.1', ['100']), 0);
    assert.equal(relaxedAccuracy('95', ['100']), 1);
    assert.equal(relaxedAccuracy('94.9', ['100']), 0);
    assert.equal(relaxedAccuracy('-10.4', ['-10']), 1);
  });
  it('commas are thousands separators, % divides by 100', () => {
    assert.equal(parseNumber('1,234'), 1234);
    assert.equal(parseNumber('12,34'), null, 'not a grouping');
    close(parseNumber('45%')!, 0.45);
    assert.equal(relaxedAccuracy('1,200', ['1234']), 1);
    assert.equal(relaxedAccuracy('45%', ['0.46']), 1);
    assert.equal(relaxedAccuracy('45', ['45%']), 0, '45 is not 0.45');
  });
  it('a target of 0 needs 0; non-numbers need an exact match', () => {
    assert.equal(relaxedAccuracy('0.0', ['0']), 1);
    assert.equal(relaxedAccuracy('0.01', ['0']), 0);
    assert.equal(relaxedAccuracy('Blue', ['blue']), 1);
    assert.equal(relaxedAccuracy('blue bar', ['blue']), 0);
    assert.equal(relaxedAccuracy('', ['12']), 0);
    assert.equal(relaxedAccuracy('12 apples', ['12']), 0);
  });
});

describe('VQA accuracy', () => {
  it('normalises as the VQA evaluation does', () => {
    assert.equal(vqaNormalize('Two dogs.'), '2 dogs');
    assert.equal(vqaNormalize('The red one!'), 'red 1');
    assert.equal(vqaNormalize('3.5'), '3.5');
    assert.equal(vqaNormalize('dont know'), "don't know");
    assert.equal(vqaNormalize('its fine'), 'its fine', 'a word of its own stays');
    assert.equal(vqaNormalize('1,000'), '1000');
    assert.equal(vqaNormalize('black-and-white'), 'black and white');
    assert.equal(vqaNormalize('yes , it is'), 'yes it is');
  });
  it('10 answers: min(matches / 3, 1) averaged over the 10 leave-one-out sets', () => {
    const refs = (k: number) => [...Array(k).fill('2'), ...Array(10 - k).fill('3')];
    close(vqaAccuracy('two', refs(0)), 0);
    close(vqaAccuracy('two', refs(1)), (1 * 0 + 9 * (1 / 3)) / 10); // 0.3
    close(vqaAccuracy('two', refs(2)), (2 * (1 / 3) + 8 * (2 / 3)) / 10); // 0.6
    close(vqaAccuracy('two', refs(3)), (3 * (2 / 3) + 7 * 1) / 10); // 0.9
    close(vqaAccuracy('two', refs(4)), 1);
  });
  it('one answer is a plain match; no answer or an empty prediction scores 0', () => {
    assert.equal(vqaAccuracy('A dog', ['dog']), 1);
    assert.equal(vqaAccuracy('cat', ['dog']), 0);
    assert.equal(vqaAccuracy('dog', []), 0);
    assert.equal(vqaAccuracy('', ['dog', 'dog', 'dog']), 0);
  });
});

describe('ANLS', () => {
  it('Levenshtein', () => {
    assert.equal(levenshtein('kitten', 'sitting'), 3);
    assert.equal(levenshtein('', 'abc'), 3);
    assert.equal(levenshtein('abc', 'abc'), 0);
    assert.equal(levenshtein('ü', 'u'), 1, 'code points, not UTF-16 units');
  });
  it('1 - distance / longer length, case and spaces normalised', () => {
    close(anls('Hello  World', ['hello world']), 1);
    close(anls('helo', ['hello']), 1 - 1 / 5); // 0.8
    close(anls('kitten', ['sitting']), 1 - 3 / 7);
  });
  it('0 under the 0.5 threshold, exactly 0.5 kept', () => {
    close(anls('ab', ['abcd']), 0.5);
    assert.equal(anls('a', ['abcd']), 0); // 0.25
    assert.equal(anls('', ['abc']), 0);
    close(anls('', ['']), 1);
  });
  it('the best of several answers', () => {
    close(anls('1984', ['nineteen eighty-four', '1985']), 0.75);
  });
});

describe('IoU', () => {
  it('overlap, containment, disjoint, touching', () => {
    close(iou({ x0: 0, y0: 0, x1: 10, y1: 10 }, { x0: 5, y0: 0, x1: 15, y1: 10 }), 50 / 150);
    close(iou({ x0: 0, y0: 0, x1: 10, y1: 10 }, { x0: 2, y0: 2, x1: 7, y1: 7 }), 25 / 100);
    assert.equal(iou({ x0: 0, y0: 0, x1: 1, y1: 1 }, { x0: 2, y0: 2, x1: 3, y1: 3 }), 0);
    assert.equal(iou({ x0: 0, y0: 0, x1: 1, y1: 1 }, { x0: 1, y0: 0, x1: 2, y1: 1 }), 0);
    close(iou({ x0: 3, y0: 4, x1: 8, y1: 9 }, { x0: 3, y0: 4, x1: 8, y1: 9 }), 1);
  });
  it('empty boxes', () => {
    assert.equal(iou({ x0: 1, y0: 1, x1: 1, y1: 1 }, { x0: 0, y0: 0, x1: 2, y1: 2 }), 0);
    assert.equal(iou({ x0: 1, y0: 1, x1: 1, y1: 1 }, { x0: 1, y0: 1, x1: 1, y1: 1 }), 1);
  });
});
