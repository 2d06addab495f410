/**
 * Example Orbit agent: word frequencies (a port of `examples/wordfreq`).
 *
 * The input is text. The agent splits it into words at Unicode word
 * boundaries (UAX #29, punctuation dropped: `uax29.ts`, a port of the Rust
 * crate unicode-segmentation's `unicode_words`), lowercases them as Rust
 * does (`casing.ts`) and returns
 *
 * ```json
 * {"total_words":N,"distinct_words":M,"top":[["the",123],...],"cached":false}
 * ```
 *
 * where `top` holds the 20 most frequent words, by count descending then
 * word ascending (by code point, as Rust compares strings). The result is
 * cached under `wordfreq/<sha256 hex of the input>` for one hour; a cache
 * hit returns the cached result with `"cached":true` and logs `cache hit`.
 * The output, cache key and cache entries are the same as the Rust
 * example's, byte for byte, so either agent reads the other's entries.
 *
 * `run` is `async` because it hashes with `crypto.subtle.digest`, which
 * returns a promise; the component awaits it.
 *
 * @module
 */

import { cache, log } from "orbit";
import { toLowercase } from "./casing.ts";
import { type Json, parseStrict } from "./strict_json.ts";
import { asciiWords, isAscii, unicodeWords } from "./uax29.ts";

/** How many words the result lists. */
const TOP = 20;
/** How long a result stays cached, in milliseconds. */
const TTL_MS = 60 * 60 * 1000;

/** The agent's result; serialized with its fields in this order. */
interface Frequencies {
  /** How many words the text has. */
  totalWords: bigint;
  /** How many different words (lowercased). */
  distinctWords: bigint;
  /** The TOP most frequent words and their counts. */
  top: [string, bigint][];
  /** Whether the result came from the cache. */
  cached: boolean;
}

/**
 * `a` compared with `b` by code point (Rust's `str` order), not by UTF-16
 * code unit (JavaScript's `<`), which puts U+E000..U+FFFF after the
 * surrogate pairs of U+10000 and above.
 */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (D800..DFFF) move above E000..FFFF.
    x += x >= 0xd800 ? (x >= 0xe000 ? -0x800 : 0x2000) : 0;
    y += y >= 0xd800 ? (y >= 0xe000 ? -0x800 : 0x2000) : 0;
    return x - y;
  }
  return a.length - b.length;
}

/** Word counts of `text`. */
export function analyse(text: string): Frequencies {
  // The component's JavaScript engine is an interpreter, where every
  // operation counts: the work is left to native calls where it can be.
  // An all-ASCII text is lowercased first, in one call (ASCII letters stay
  // letters, so the words are the same, lowercased).
  const words = isAscii(text) ? asciiWords(text.toLowerCase()) : unicodeWords(text).map(toLowercase);
  // Group equal words with a native sort (in UTF-16 order, which is enough
  // to group them), then count the runs.
  words.sort();
  const distinct: string[] = [];
  const counts: number[] = [];
  let prev: string | undefined;
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    if (w === prev) {
      counts[counts.length - 1] += 1;
    } else {
      distinct.push(w);
      counts.push(1);
      prev = w;
    }
  }
  // Only words counted at least as often as the TOP-th most frequent one
  // can be in the top: find that count with a native numeric sort, and
  // sort those words alone.
  const sorted = Float64Array.from(counts).sort();
  const threshold = sorted.length > TOP ? (sorted[sorted.length - TOP] as number) : 0;
  const candidates: [string, number][] = [];
  for (let i = 0; i < counts.length; i++) {
    if ((counts[i] as number) >= threshold) candidates.push([distinct[i] as string, counts[i] as number]);
  }
  candidates.sort((a, b) => b[1] - a[1] || compareCodePoints(a[0], b[0]));
  const top = candidates.slice(0, TOP).map((e): [string, bigint] => [e[0], BigInt(e[1])]);
  return { totalWords: BigInt(words.length), distinctWords: BigInt(distinct.length), top, cached: false };
}

/** `result` as serde_json writes it: compact, fields in order, non-ASCII as is. */
export function toJson(result: Frequencies): string {
  const top = result.top.map(([w, c]) => `[${JSON.stringify(w)},${c}]`).join(",");
  return `{"total_words":${result.totalWords},"distinct_words":${result.distinctWords},"top":[${top}],"cached":${result.cached}}`;
}

const U64_MAX = (1n << 64n) - 1n;

function u64(v: Json | undefined): bigint | null {
  if (v === null || v === undefined || typeof v !== "object" || Array.isArray(v) || v.kind !== "number") return null;
  // serde_json reads -0 as a float, which a u64 refuses.
  const n = v.integer;
  return n !== null && !Object.is(v.value, -0) && n >= 0n && n <= U64_MAX ? n : null;
}

/**
 * The result in a cache entry, if it has the shape this agent writes (as
 * strict as the Rust agent's serde: every field, of its type; unknown
 * fields ignored; a duplicate field, or anything that is not UTF-8 JSON, is
 * malformed). As with serde, the struct may also be a 4-item array.
 */
export function parseCached(data: Uint8Array): Frequencies | null {
  let doc: Json;
  try {
    doc = parseStrict(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(data));
  } catch {
    return null;
  }
  let fields: (Json | undefined)[];
  if (Array.isArray(doc)) {
    if (doc.length !== 4) return null;
    fields = doc;
  } else if (doc !== null && typeof doc === "object" && doc.kind === "object") {
    const m = doc.members;
    fields = [m.get("total_words"), m.get("distinct_words"), m.get("top"), m.get("cached")];
  } else {
    return null;
  }
  const [total, distinct, top, cached] = fields;
  const totalWords = u64(total);
  const distinctWords = u64(distinct);
  if (totalWords === null || distinctWords === null || typeof cached !== "boolean" || !Array.isArray(top)) return null;
  const entries: [string, bigint][] = [];
  for (const entry of top) {
    if (!Array.isArray(entry) || entry.length !== 2) return null;
    const [word, count] = entry;
    const c = u64(count);
    if (typeof word !== "string" || c === null) return null;
    entries.push([word, c]);
  }
  return { totalWords, distinctWords, top: entries, cached };
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Hash once while the component is built: the engine initializes its
// digests then, and the snapshot keeps them ready for every run.
void sha256Hex("");

/** The word frequencies of `input`, from the cache when they are there. */
export async function run(input: string): Promise<string> {
  const key = "wordfreq/" + (await sha256Hex(input));

  const data = cache.get(key);
  if (data !== null) {
    // Only trust an entry in the shape this agent writes.
    const cached = parseCached(data);
    if (cached !== null) {
      log.info("cache hit");
      cached.cached = true;
      return toJson(cached);
    }
    log.warn("ignoring a malformed cache entry");
  }

  const result = toJson(analyse(input));
  cache.set(key, new TextEncoder().encode(result), TTL_MS);
  log.debug(`cached result under ${key}`);
  return result;
}
