/**
 * A JSON parser as strict as serde_json's, for reading the wordfreq
 * example's cache entries exactly as the Rust agent does: numbers keep
 * whether they were written as integers (and their exact value), an
 * object with a duplicate key is an error, and so are lone surrogates,
 * nesting deeper than 128 and anything after the value but whitespace.
 *
 * @module
 */

/** A parsed JSON value. Numbers are {@link JsonNumber}s; objects keep their keys in order. */
export type Json = null | boolean | string | JsonNumber | Json[] | JsonObject;

/** A JSON object: its members, in order (keys are unique). */
export interface JsonObject {
  /** The case: an object. */
  readonly kind: "object";
  /** Its members, by key, in order. */
  readonly members: Map<string, Json>;
}

/** A JSON number: `integer` when written without fraction or exponent (then exact), else `float`. */
export interface JsonNumber {
  /** The case: a number. */
  readonly kind: "number";
  /** The exact value of a number written as an integer; `null` for a float. */
  readonly integer: bigint | null;
  /** The value as a double. */
  readonly value: number;
}

/** A JSON number (RFC 8259), matched where the parser stands. */
const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

/** serde_json's recursion limit. */
const MAX_DEPTH = 128;

class Parser {
  private pos = 0;
  private depth = 0;

  constructor(private readonly s: string) {}

  fail(): never {
    throw new SyntaxError(`invalid JSON at offset ${this.pos}`);
  }

  ws(): void {
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.pos++;
      else break;
    }
  }

  literal(word: string): void {
    if (!this.s.startsWith(word, this.pos)) this.fail();
    this.pos += word.length;
  }

  value(): Json {
    this.ws();
    const c = this.s[this.pos];
    switch (c) {
      case "{":
        return this.object();
      case "[":
        return this.array();
      case '"':
        return this.string();
      case "t":
        this.literal("true");
        return true;
      case "f":
        this.literal("false");
        return false;
      case "n":
        this.literal("null");
        return null;
      default:
        return this.number();
    }
  }

  enter(): void {
    if (++this.depth > MAX_DEPTH) this.fail();
    this.pos++;
  }

  object(): JsonObject {
    this.enter();
    const members = new Map<string, Json>();
    this.ws();
    if (this.s[this.pos] === "}") {
      this.pos++;
    } else {
      for (;;) {
        this.ws();
        if (this.s[this.pos] !== '"') this.fail();
        const key = this.string();
        if (members.has(key)) this.fail(); // duplicate field
        this.ws();
        if (this.s[this.pos] !== ":") this.fail();
        this.pos++;
        members.set(key, this.value());
        this.ws();
        const sep = this.s[this.pos++];
        if (sep === "}") break;
        if (sep !== ",") this.fail();
      }
    }
    this.depth--;
    return { kind: "object", members };
  }

  array(): Json[] {
    this.enter();
    const items: Json[] = [];
    this.ws();
    if (this.s[this.pos] === "]") {
      this.pos++;
    } else {
      for (;;) {
        items.push(this.value());
        this.ws();
        const sep = this.s[this.pos++];
        if (sep === "]") break;
        if (sep !== ",") this.fail();
      }
    }
    this.depth--;
    return items;
  }

  hex4(): number {
    const h = this.s.slice(this.pos, this.pos + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.fail();
    this.pos += 4;
    return parseInt(h, 16);
  }

  string(): string {
    this.pos++; // the opening quote
    let out = "";
    for (;;) {
      if (this.pos >= this.s.length) this.fail();
      const c = this.s.charCodeAt(this.pos);
      if (c === 0x22) {
        this.pos++;
        return out;
      }
      if (c < 0x20) this.fail(); // a control character
      if (c !== 0x5c) {
        // Input text is well-formed UTF-16: it came from valid UTF-8.
        out += this.s[this.pos++];
        continue;
      }
      const e = this.s[this.pos + 1];
      this.pos += 2;
      const simple: Record<string, string> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
      if (e !== undefined && e in simple) {
        out += simple[e];
      } else if (e === "u") {
        const u = this.hex4();
        if (u >= 0xdc00 && u <= 0xdfff) this.fail(); // a lone low surrogate
        if (u >= 0xd800 && u <= 0xdbff) {
          if (this.s.slice(this.pos, this.pos + 2) !== "\\u") this.fail(); // a lone high surrogate
          this.pos += 2;
          const low = this.hex4();
          if (low < 0xdc00 || low > 0xdfff) this.fail();
          out += String.fromCharCode(u, low);
        } else {
          out += String.fromCharCode(u);
        }
      } else {
        this.fail();
      }
    }
  }

  number(): JsonNumber {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.s);
    if (m === null) this.fail();
    const text = m[0];
    this.pos += text.length;
    const isInteger = m[1] === undefined && m[2] === undefined;
    return { kind: "number", integer: isInteger ? BigInt(text) : null, value: Number(text) };
  }

  document(): Json {
    const v = this.value();
    this.ws();
    if (this.pos !== this.s.length) this.fail(); // trailing characters
    return v;
  }
}

/**
 * `text` parsed as one JSON value.
 *
 * @throws SyntaxError it is not (see the module documentation).
 */
export function parseStrict(text: string): Json {
  return new Parser(text).document();
}
