// An incremental checker of JSON prefixes, byte by byte (RFC 8259, UTF-8): whether the bytes so far can still
// be continued into one valid JSON object, and how few bytes would close it. Constrained decoding (json-mode.ts)
// runs every candidate token's bytes through a copy of it and masks the tokens it refuses. The top-level value is
// an object (OpenAI's response_format json_object); nothing may follow it. Runs of whitespace are bounded, and so
// is nesting, so the state stays small and a generation cannot spin in whitespace for ever.

/** Whitespace bytes allowed in a row (enough for indented, pretty-printed JSON). */
export const MAX_WHITESPACE_RUN = 32;
/** Objects and arrays open at once. */
export const MAX_DEPTH = 64;

const enum M {
  Top, // before the top-level '{'
  ObjFirst, // after '{': a key or '}'
  ObjKey, // after ',' in an object: a key
  Colon, // after a key
  Value, // after ':' or ',' in an array: a value
  ArrFirst, // after '[': a value or ']'
  After, // after a value: ',' or the closer
  Str, // inside a string
  Esc, // after a backslash in a string
  Hex, // inside \uXXXX (hex digits seen: `hex`)
  Minus, // after a number's '-'
  Zero, // a number's leading 0
  Int, // integer digits
  Dot, // after '.'
  Frac, // fraction digits
  Exp, // after 'e'
  ExpSign, // after 'e+' / 'e-'
  ExpDigits, // exponent digits
  Lit, // inside true / false / null (`lit` holds the rest)
  Done, // the top-level object closed
}

const isWs = (b: number) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);

export class JsonPrefix {
  private mode: M = M.Top;
  /** open containers, '{' or '[' */
  private stack = '';
  /** the string being read is an object key */
  private key = false;
  private hex = 0;
  private lit = '';
  private ws = 0;
  /** continuation bytes a UTF-8 character in a string still needs, and the range of the next one */
  private cont = 0;
  private lo = 0x80;
  private hi = 0xbf;

  clone(): JsonPrefix {
    const c = new JsonPrefix();
    c.mode = this.mode;
    c.stack = this.stack;
    c.key = this.key;
    c.hex = this.hex;
    c.lit = this.lit;
    c.ws = this.ws;
    c.cont = this.cont;
    c.lo = this.lo;
    c.hi = this.hi;
    return c;
  }

  /** The top-level object is complete (only the end may follow). */
  get done(): boolean {
    return this.mode === M.Done;
  }

  /** Feeds bytes; false (and the state is then undefined: use a clone) when they cannot continue valid JSON. */
  pushBytes(bytes: ArrayLike<number>): boolean {
    for (let i = 0; i < bytes.length; i++) if (!this.push(bytes[i]!)) return false;
    return true;
  }

  /** Feeds one byte; false when it cannot continue valid JSON. */
  push(b: number): boolean {
    switch (this.mode) {
      case M.Str:
        return this.strByte(b);
      case M.Esc:
        if (b === 0x75) {
          this.mode = M.Hex;
          this.hex = 0;
          return true;
        }
        if ('"\\/bfnrt'.includes(String.fromCharCode(b))) {
          this.mode = M.Str;
          return true;
        }
        return false;
      case M.Hex:
        if (!isHex(b)) return false;
        if (++this.hex === 4) this.mode = M.Str;
        return true;
      case M.Lit:
        if (b !== this.lit.charCodeAt(0)) return false;
        this.lit = this.lit.slice(1);
        if (!this.lit) this.afterValue();
        return true;
      case M.Minus:
        if (b === 0x30) this.mode = M.Zero;
        else if (isDigit(b)) this.mode = M.Int;
        else return false;
        return true;
      case M.Zero:
      case M.Int:
        if (isDigit(b) && this.mode === M.Int) return true;
        if (b === 0x2e) this.mode = M.Dot;
        else if (b === 0x65 || b === 0x45) this.mode = M.Exp;
        else return this.endNumber(b);
        return true;
      case M.Dot:
        if (!isDigit(b)) return false;
        this.mode = M.Frac;
        return true;
      case M.Frac:
        if (isDigit(b)) return true;
        if (b === 0x65 || b === 0x45) {
          this.mode = M.Exp;
          return true;
        }
        return this.endNumber(b);
      case M.Exp:
        if (b === 0x2b || b === 0x2d) this.mode = M.ExpSign;
        else if (isDigit(b)) this.mode = M.ExpDigits;
        else return false;
        return true;
      case M.ExpSign:
        if (!isDigit(b)) return false;
        this.mode = M.ExpDigits;
        return true;
      case M.ExpDigits:
        return isDigit(b) || this.endNumber(b);
      case M.Done:
        return false;
      default:
        return this.structural(b);
    }
  }

  /** A byte outside strings, numbers and literals. */
  private structural(b: number): boolean {
    if (isWs(b)) return ++this.ws <= MAX_WHITESPACE_RUN;
    this.ws = 0;
    switch (this.mode) {
      case M.Top:
        return b === 0x7b && this.open('{');
      case M.ObjFirst:
        if (b === 0x7d) return this.close('{');
        return b === 0x22 && this.startString(true);
      case M.ObjKey:
        return b === 0x22 && this.startString(true);
      case M.Colon:
        if (b !== 0x3a) return false;
        this.mode = M.Value;
        return true;
      case M.ArrFirst:
        if (b === 0x5d) return this.close('[');
        return this.startValue(b);
      case M.Value:
        return this.startValue(b);
      case M.After: {
        const top = this.stack[this.stack.length - 1];
        if (b === 0x2c) {
          this.mode = top === '{' ? M.ObjKey : M.Value;
          return true;
        }
        if (b === 0x7d) return this.close('{');
        if (b === 0x5d) return this.close('[');
        return false;
      }
      default:
        return false;
    }
  }

  private startValue(b: number): boolean {
    if (b === 0x7b) return this.open('{');
    if (b === 0x5b) return this.open('[');
    if (b === 0x22) return this.startString(false);
    if (b === 0x2d) this.mode = M.Minus;
    else if (b === 0x30) this.mode = M.Zero;
    else if (isDigit(b)) this.mode = M.Int;
    else if (b === 0x74) this.startLiteral('rue');
    else if (b === 0x66) this.startLiteral('alse');
    else if (b === 0x6e) this.startLiteral('ull');
    else return false;
    return true;
  }

  private startLiteral(rest: string): void {
    this.mode = M.Lit;
    this.lit = rest;
  }

  private startString(key: boolean): boolean {
    this.mode = M.Str;
    this.key = key;
    this.cont = 0;
    return true;
  }

  private open(c: '{' | '['): boolean {
    if (this.stack.length >= MAX_DEPTH) return false;
    this.stack += c;
    this.mode = c === '{' ? M.ObjFirst : M.ArrFirst;
    return true;
  }

  private close(c: '{' | '['): boolean {
    if (this.stack[this.stack.length - 1] !== c) return false;
    this.stack = this.stack.slice(0, -1);
    this.afterValue();
    return true;
  }

  private afterValue(): void {
    this.mode = this.stack ? M.After : M.Done;
    this.ws = 0;
  }

  /** A number ended at byte b (not part of it): b is read as what follows a value. */
  private endNumber(b: number): boolean {
    this.afterValue();
    return this.structural(b);
  }

  private strByte(b: number): boolean {
    if (this.cont > 0) {
      if (b < this.lo || b > this.hi) return false;
      this.cont--;
      this.lo = 0x80;
      this.hi = 0xbf;
      return true;
    }
    if (b === 0x22) {
      if (this.key) this.mode = M.Colon;
      else this.afterValue();
      this.ws = 0;
      return true;
    }
    if (b === 0x5c) {
      this.mode = M.Esc;
      return true;
    }
    if (b < 0x20) return false; // control characters must be escaped
    if (b < 0x80) return true;
    // UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF (the first continuation byte's range)
    if (b >= 0xc2 && b <= 0xdf) this.utf8(1, 0x80, 0xbf);
    else if (b === 0xe0) this.utf8(2, 0xa0, 0xbf);
    else if ((b >= 0xe1 && b <= 0xec) || b === 0xee || b === 0xef) this.utf8(2, 0x80, 0xbf);
    else if (b === 0xed) this.utf8(2, 0x80, 0x9f);
    else if (b === 0xf0) this.utf8(3, 0x90, 0xbf);
    else if (b >= 0xf1 && b <= 0xf3) this.utf8(3, 0x80, 0xbf);
    else if (b === 0xf4) this.utf8(3, 0x80, 0x8f);
    else return false;
    return true;
  }

  private utf8(cont: number, lo: number, hi: number): void {
    this.cont = cont;
    this.lo = lo;
    this.hi = hi;
  }

  /**
   * The fewest bytes that complete the object from here (e.g. '"' + ':0' + '}' inside a key): constrained
   * decoding keeps this within the tokens left, one byte per token at worst.
   */
  closingBytes(): number {
    const closers = this.stack.length;
    const valueEnd = (n: number) => n + closers; // after a value inside the open containers
    switch (this.mode) {
      case M.Top:
        return 2; // {}
      case M.Done:
        return 0;
      case M.ObjFirst:
      case M.ArrFirst:
      case M.After:
        return closers;
      case M.ObjKey:
        return valueEnd(4); // "":0
      case M.Colon:
        return valueEnd(2); // :0
      case M.Value:
        return valueEnd(1); // 0
      case M.Str:
      case M.Esc:
      case M.Hex: {
        const inside = this.mode === M.Esc ? 1 : this.mode === M.Hex ? 4 - this.hex : this.cont;
        return valueEnd(inside + 1 + (this.key ? 2 : 0));
      }
      case M.Minus:
      case M.Dot:
      case M.Exp:
      case M.ExpSign:
        return valueEnd(1);
      case M.Lit:
        return valueEnd(this.lit.length);
      default: // a number that may end here
        return closers;
    }
  }
}
