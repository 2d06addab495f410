/**
 * Unicode word segmentation (UAX #29), ported from the Rust crate
 * unicode-segmentation 1.13.3 (`split_word_bounds` and `unicode_words`),
 * with the crate's own Unicode tables (`unicode_tables.ts`), so that the
 * TypeScript wordfreq agent splits text exactly as the Rust one does. (The
 * component's JavaScript engine has no `Intl.Segmenter`.) A port of
 * `guest-sdk/python/examples/wordfreq/uax29.py`.
 *
 * As in the crate, an all-ASCII text takes a fast path (here one regular
 * expression); any other text goes through the UAX #29 state machine.
 *
 * @module
 */

import * as T from "./unicode_tables.ts";

// Word_Break categories, by index in T.CATEGORIES.
const ALETTER = 0;
const CR = 1;
const DOUBLE_QUOTE = 2;
const EXTEND = 3;
const EXTENDNUMLET = 4;
const FORMAT = 5;
const HEBREW_LETTER = 6;
const KATAKANA = 7;
const LF = 8;
const MIDLETTER = 9;
const MIDNUM = 10;
const MIDNUMLET = 11;
const NEWLINE = 12;
const NUMERIC = 13;
const REGIONAL_INDICATOR = 14;
const SINGLE_QUOTE = 15;
const WSEGSPACE = 16;
const ZWJ = 17;
const ANY = 18;

if (T.CATEGORIES[ZWJ] !== "ZWJ" || T.CATEGORIES[ALETTER] !== "ALetter" || T.CATEGORIES.length !== 18) {
  throw new Error("unicode_tables.ts does not have the Word_Break categories uax29.ts expects");
}

// States of the forward state machine (the crate's UWordBoundsState).
const S_START = 0;
const S_LETTER = 1;
const S_HLETTER = 2;
const S_NUMERIC = 3;
const S_KATAKANA = 4;
const S_EXTENDNUMLET = 5;
const S_REGIONAL_HALF = 6;
const S_REGIONAL_FULL = 7;
const S_ZWJ = 8;
const S_EMOJI = 9;
const S_WSEGSPACE = 10;
// FormatExtend(...) subtypes.
const FE_ACCEPT_NONE = 11;
const FE_REQUIRE_LETTER = 12;
const FE_REQUIRE_HLETTER = 13;
const FE_ACCEPT_QLETTER = 14;
const FE_REQUIRE_NUMERIC = 15;

function lookup(c: number): number {
  // The last range that starts at or before c.
  const starts = T.WORD_STARTS;
  let lo = 0;
  let hi = starts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((starts[mid] as number) <= c) lo = mid + 1;
    else hi = mid;
  }
  const i = lo - 1;
  if (i >= 0 && c <= (T.WORD_ENDS[i] as number)) return T.WORD_CATS[i] as number;
  return ANY;
}

const ASCII_CATS: number[] = Array.from({ length: 128 }, (_, c) => lookup(c));

/** The Word_Break category of the code point `c`. */
export function wordCategory(c: number): number {
  return c < 128 ? (ASCII_CATS[c] as number) : lookup(c);
}

/** Whether `c` is in `table`: sorted inclusive ranges, flattened as start, end, start, end ... */
export function inRanges(table: readonly number[], c: number): boolean {
  let lo = 0;
  let hi = table.length >> 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((table[2 * mid] as number) <= c) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 && c <= (table[2 * (lo - 1) + 1] as number);
}

function isExtendedPictographic(c: number): boolean {
  return inRanges(T.EXTENDED_PICTOGRAPHIC, c);
}

/** Alphabetic, or General_Category=Number (Rust's `char::is_alphanumeric`). */
export function isAlphanumeric(c: number): boolean {
  if (c < 128) return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  return inRanges(T.ALPHANUMERIC, c);
}

/**
 * The pieces of `s` between word boundaries (UAX #29), in order; joined,
 * they give `s` back.
 */
export function splitWordBounds(s: string): string[] {
  // Code points and their UTF-16 offsets (offs[n] is s.length).
  const cps: number[] = [];
  const offs: number[] = [];
  for (let k = 0; k < s.length; ) {
    const c = s.codePointAt(k) as number;
    cps.push(c);
    offs.push(k);
    k += c > 0xffff ? 2 : 1;
  }
  const n = cps.length;
  offs.push(s.length);

  const pieces: string[] = [];
  let start = 0;
  let cached: number | null = null;
  while (start < n) {
    let takeCurr = true;
    let takeCat = true;
    let idx = start;
    let saveidx = start;
    let state = S_START;
    let cat = ANY;
    let savecat = ANY;
    let skippedFormatExtend = false;
    let i = start;
    while (i < n) {
      idx = i;
      const ch = cps[i] as number;
      const prevZwj = cat === ZWJ;
      if (cached === null) {
        cat = wordCategory(ch);
      } else {
        cat = cached;
        cached = null;
      }
      takeCat = true;
      i += 1;
      // WB4: skip Extend, Format and ZWJ (except at the start).
      if (state !== S_START && (cat === EXTEND || cat === FORMAT || cat === ZWJ)) {
        skippedFormatExtend = true;
        continue;
      }
      // WB3c
      if (prevZwj && isExtendedPictographic(ch)) {
        state = S_EMOJI;
        continue;
      }
      if (state === S_START) {
        if (cat === CR) {
          if (idx + 1 < n && wordCategory(cps[idx + 1] as number) === LF) idx += 1; // WB3
          break; // WB3a
        }
        if (cat === ALETTER) state = S_LETTER;
        else if (cat === HEBREW_LETTER) state = S_HLETTER;
        else if (cat === NUMERIC) state = S_NUMERIC;
        else if (cat === KATAKANA) state = S_KATAKANA;
        else if (cat === EXTENDNUMLET) state = S_EXTENDNUMLET;
        else if (cat === REGIONAL_INDICATOR) state = S_REGIONAL_HALF;
        else if (cat === LF || cat === NEWLINE) break; // WB3a
        else if (cat === ZWJ) state = S_ZWJ;
        else if (cat === WSEGSPACE) state = S_WSEGSPACE;
        else {
          if (idx + 1 < n) {
            const ncat = wordCategory(cps[idx + 1] as number);
            if (ncat === FORMAT || ncat === EXTEND || ncat === ZWJ) {
              // WB4
              state = FE_ACCEPT_NONE;
              cached = ncat;
              continue;
            }
          }
          break; // WB999
        }
      } else if (state === S_WSEGSPACE) {
        if (cat === WSEGSPACE && !skippedFormatExtend) {
          state = S_WSEGSPACE;
        } else {
          takeCurr = false;
          break;
        }
      } else if (state === S_ZWJ) {
        takeCurr = false;
        break;
      } else if (state === S_LETTER || state === S_HLETTER) {
        if (cat === ALETTER) state = S_LETTER; // WB5
        else if (cat === HEBREW_LETTER) state = S_HLETTER; // WB5
        else if (cat === NUMERIC) state = S_NUMERIC; // WB9
        else if (cat === EXTENDNUMLET) state = S_EXTENDNUMLET; // WB13a
        else if (cat === DOUBLE_QUOTE && state === S_HLETTER) {
          savecat = cat;
          saveidx = idx;
          state = FE_REQUIRE_HLETTER; // WB7b
        } else if (cat === SINGLE_QUOTE && state === S_HLETTER) {
          state = FE_ACCEPT_QLETTER; // WB7a
        } else if (cat === MIDLETTER || cat === MIDNUMLET || cat === SINGLE_QUOTE) {
          savecat = cat;
          saveidx = idx;
          state = FE_REQUIRE_LETTER; // WB6
        } else {
          takeCurr = false;
          break;
        }
      } else if (state === S_NUMERIC) {
        if (cat === NUMERIC) state = S_NUMERIC; // WB8
        else if (cat === ALETTER) state = S_LETTER; // WB10
        else if (cat === HEBREW_LETTER) state = S_HLETTER; // WB10
        else if (cat === EXTENDNUMLET) state = S_EXTENDNUMLET; // WB13a
        else if (cat === MIDNUM || cat === MIDNUMLET || cat === SINGLE_QUOTE) {
          savecat = cat;
          saveidx = idx;
          state = FE_REQUIRE_NUMERIC; // WB12
        } else {
          takeCurr = false;
          break;
        }
      } else if (state === S_KATAKANA) {
        if (cat === KATAKANA) state = S_KATAKANA; // WB13
        else if (cat === EXTENDNUMLET) state = S_EXTENDNUMLET; // WB13a
        else {
          takeCurr = false;
          break;
        }
      } else if (state === S_EXTENDNUMLET) {
        if (cat === EXTENDNUMLET) state = S_EXTENDNUMLET; // WB13a
        else if (cat === ALETTER) state = S_LETTER; // WB13b
        else if (cat === HEBREW_LETTER) state = S_HLETTER;
        else if (cat === NUMERIC) state = S_NUMERIC;
        else if (cat === KATAKANA) state = S_KATAKANA;
        else {
          takeCurr = false;
          break;
        }
      } else if (state === S_REGIONAL_FULL) {
        takeCurr = false;
        break;
      } else if (state === S_REGIONAL_HALF) {
        if (cat === REGIONAL_INDICATOR) {
          state = S_REGIONAL_FULL; // WB13c
        } else {
          takeCurr = false;
          break;
        }
      } else if (state === S_EMOJI) {
        takeCurr = false;
        break;
      } else {
        // FormatExtend(t)
        const t = state;
        if (t === FE_REQUIRE_NUMERIC && cat === NUMERIC) {
          state = S_NUMERIC; // WB11
        } else if ((t === FE_REQUIRE_LETTER || t === FE_ACCEPT_QLETTER) && cat === ALETTER) {
          state = S_LETTER; // WB7
        } else if ((t === FE_REQUIRE_LETTER || t === FE_ACCEPT_QLETTER) && cat === HEBREW_LETTER) {
          state = S_HLETTER; // WB7a
        } else if (t === FE_REQUIRE_HLETTER && cat === HEBREW_LETTER) {
          state = S_HLETTER; // WB7b
        } else if (t === FE_ACCEPT_NONE || t === FE_ACCEPT_QLETTER) {
          takeCurr = false; // emit the Format|Extend characters
          takeCat = false;
          break;
        } else {
          break; // rewound below
        }
      }
    }

    if (state === FE_REQUIRE_LETTER || state === FE_REQUIRE_HLETTER || state === FE_REQUIRE_NUMERIC) {
      // Looked for something and did not find it: back up.
      idx = saveidx;
      cat = savecat;
      takeCurr = false;
    }

    if (takeCurr) {
      idx += 1;
      cached = null;
    } else if (takeCat) {
      cached = cat;
    } else {
      cached = null;
    }
    pieces.push(s.slice(offs[start], offs[idx]));
    start = idx;
  }
  return pieces;
}

// The crate's ASCII fast path (AsciiWordBoundIter) as one expression: a run
// of [A-Za-z0-9_], with `.` `,` `;` `'` between digits and `'` `.` `:`
// between letters. Its other pieces (spaces, CR LF, single characters) hold
// no alphanumeric character, so unicodeWords drops them anyway. (Written as
// runs joined by punctuation rather than one alternation per character: the
// same matches, for a fraction of the regular expression engine's work.)
const ASCII_WORD = /[A-Za-z0-9_]+(?:(?:(?<=[0-9])[.,;'](?=[0-9])|(?<=[A-Za-z])['.:](?=[A-Za-z]))[A-Za-z0-9_]+)*/g;
const ASCII_ALNUM = /[A-Za-z0-9]/;
const ASCII = /^[\x00-\x7f]*$/;

function hasAlphanumeric(piece: string): boolean {
  for (let k = 0; k < piece.length; ) {
    const c = piece.codePointAt(k) as number;
    if (isAlphanumeric(c)) return true;
    k += c > 0xffff ? 2 : 1;
  }
  return false;
}

/** Whether `s` is all ASCII. */
export function isAscii(s: string): boolean {
  return ASCII.test(s);
}

/** {@link unicodeWords} of an all-ASCII `s` (the crate's fast path). */
export function asciiWords(s: string): string[] {
  const words = s.match(ASCII_WORD) ?? [];
  // A match holds an alphanumeric character unless it is all `_`.
  return words.filter((w) => w.charCodeAt(0) !== 0x5f || ASCII_ALNUM.test(w));
}

/**
 * The words of `s`: the pieces between word boundaries that hold an
 * alphabetic or numeric character (the crate's `unicode_words`).
 */
export function unicodeWords(s: string): string[] {
  if (isAscii(s)) return asciiWords(s);
  return splitWordBounds(s).filter(hasAlphanumeric);
}
