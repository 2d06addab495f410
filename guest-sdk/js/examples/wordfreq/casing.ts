/**
 * Lowercasing as Rust's `str::to_lowercase` does it.
 *
 * The component's JavaScript engine (SpiderMonkey in StarlingMonkey, built
 * without ICU) maps every character as Rust 1.95 does (both use Unicode
 * 17), but it lowercases `Σ` to `σ` everywhere, while Rust (and Python)
 * write the final sigma `ς` at the end of a word: when the `Σ` follows a
 * cased character (case-ignorable characters between them skipped) and is
 * not followed by one (Unicode's Final_Sigma condition, SpecialCasing.txt).
 *
 * @module
 */

import { CASED, CASE_IGNORABLE } from "./unicode_tables.ts";
import { inRanges } from "./uax29.ts";

const CAPITAL_SIGMA = "\u03a3";

function codePointBefore(s: string, end: number): number {
  const low = s.charCodeAt(end - 1);
  if (low >= 0xdc00 && low <= 0xdfff && end >= 2) {
    const high = s.charCodeAt(end - 2);
    if (high >= 0xd800 && high <= 0xdbff) return (high - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000;
  }
  return low;
}

/** Whether, walking from `at` in `step` direction, the first character that is not case-ignorable is cased. */
function caseIgnorableThenCased(s: string, at: number, step: 1 | -1): boolean {
  let k = at;
  while (step > 0 ? k < s.length : k > 0) {
    const c = step > 0 ? (s.codePointAt(k) as number) : codePointBefore(s, k);
    if (!inRanges(CASE_IGNORABLE, c)) return inRanges(CASED, c);
    k += step * (c > 0xffff ? 2 : 1);
  }
  return false;
}

/** `s` lowercased exactly as Rust's `str::to_lowercase` does. */
export function toLowercase(s: string): string {
  if (!s.includes(CAPITAL_SIGMA)) return s.toLowerCase();
  let out = "";
  let from = 0;
  for (let i = s.indexOf(CAPITAL_SIGMA); i >= 0; i = s.indexOf(CAPITAL_SIGMA, i + 1)) {
    out += s.slice(from, i).toLowerCase();
    const final = caseIgnorableThenCased(s, i, -1) && !caseIgnorableThenCased(s, i + 1, 1);
    out += final ? "\u03c2" : "\u03c3";
    from = i + 1;
  }
  return out + s.slice(from).toLowerCase();
}
