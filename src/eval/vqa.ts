// VQA's answer normalisation (the VQAv2 evaluation's processPunctuation then processDigitArticle): punctuation
// removed or turned into spaces, periods not followed by a digit dropped, lower case, number words zero..ten as
// digits, articles dropped, apostrophe-less contractions ("dont") given their apostrophe ("don't").

// Removed when next to a space or when the answer has a digit-comma-digit ("1,000"); otherwise a space.
const PUNCT = [';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!'];
const COMMA_NUMBER = /\d,\d/;
// VQA's pattern `(?!<=\d)(\.)(?!\d)` is a lookahead written as a lookbehind: in effect a period not followed by a
// digit goes, so "3.5" keeps its point and "yes." loses it.
const PERIOD = /\.(?!\d)/g;

const NUMBER_WORDS: Record<string, string> = {
  none: '0', zero: '0', one: '1', two: '2', three: '3', four: '4', five: '5', six: '6', seven: '7', eight: '8', nine: '9', ten: '10',
};
const ARTICLES = new Set(['a', 'an', 'the']);

// English contractions; every spelling with some apostrophes left out maps to the full one, except spellings that
// are words of their own ("its", "well", "were", ...), which must stay as written.
const CONTRACTIONS = (
  "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't haven't he'd he'd've he's " +
  "how'd how'll how's i'd i'd've i'll i'm i've isn't it'd it'd've it'll it's let's ma'am mightn't mightn't've might've " +
  "mustn't must've needn't not've o'clock oughtn't shan't she'd she'd've she'll she's should've shouldn't shouldn't've " +
  "somebody'd somebody'd've somebody'll somebody's someone'd someone'd've someone'll someone's something'd something'd've " +
  "something'll something's that's there'd there'd've there're there's they'd they'd've they'll they're they've wasn't " +
  "we'd we'd've we'll we're we've weren't what'll what're what's what've when's where'd where's where've who'd who'd've " +
  "who'll who's who've why'll why're why's won't would've wouldn't wouldn't've y'all y'all'll y'all'd've you'd you'd've " +
  "you'll you're you've"
).split(' ');
const REAL_WORDS = new Set(['id', 'ill', 'its', 'lets', 'wed', 'well', 'were', 'shed', 'shell', 'hell', 'whore']);

const CONTRACTION_MAP: Map<string, string> = (() => {
  const m = new Map<string, string>();
  for (const full of CONTRACTIONS) {
    const marks = [...full].flatMap((ch, i) => (ch === "'" ? [i] : []));
    // every non-empty subset of the apostrophes removed
    for (let mask = 1; mask < 1 << marks.length; mask++) {
      const drop = new Set(marks.filter((_, k) => mask & (1 << k)));
      const short = [...full].filter((_, i) => !drop.has(i)).join('');
      if (REAL_WORDS.has(short)) continue;
      m.set(short, full);
    }
  }
  return m;
})();

export function vqaPunctuation(s: string): string {
  let out = s;
  const hasCommaNumber = COMMA_NUMBER.test(s);
  for (const p of PUNCT) {
    if (s.includes(p + ' ') || s.includes(' ' + p) || hasCommaNumber) out = out.split(p).join('');
    else out = out.split(p).join(' ');
  }
  return out.replace(PERIOD, '');
}

export function vqaDigitsArticles(s: string): string {
  const words: string[] = [];
  for (let w of s.toLowerCase().split(/\s+/)) {
    if (!w) continue;
    w = NUMBER_WORDS[w] ?? w;
    if (!ARTICLES.has(w)) words.push(CONTRACTION_MAP.get(w) ?? w);
  }
  return words.join(' ');
}

/** An answer as the VQA evaluation compares it. */
export function vqaNormalize(s: string): string {
  return vqaDigitsArticles(vqaPunctuation(s.replace(/[\n\t]/g, ' ').trim()));
}
