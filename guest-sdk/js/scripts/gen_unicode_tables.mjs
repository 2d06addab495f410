#!/usr/bin/env node
/**
 * Generates `examples/wordfreq/unicode_tables.ts`, the Unicode data of the
 * TypeScript wordfreq example, from the Rust sources the Rust example is
 * built with, so that the TypeScript agent splits and lowercases words
 * exactly as the Rust one does:
 *
 * - the Rust crate unicode-segmentation's `src/tables.rs`: Word_Break
 *   categories, Extended_Pictographic, Alphabetic and General_Category=Number
 *   (what `unicode_words` uses);
 * - the Rust standard library's `core/src/unicode/unicode_data.rs` (or its
 *   rustdoc source page, `share/doc/rust/html/src/core/unicode/unicode_data.rs.html`):
 *   Cased and Case_Ignorable, which `str::to_lowercase` uses for the final
 *   sigma (JavaScript's `toLowerCase` in StarlingMonkey maps every other
 *   character as Rust does, but not the final sigma).
 *
 * Usage:
 *   node gen_unicode_tables.mjs PATH/unicode-segmentation-X.Y.Z/src/tables.rs \
 *     PATH/unicode_data.rs[.html] OUT.ts
 *
 * Both inputs must be of the same Unicode version (checked).
 */

import { readFileSync, writeFileSync } from "node:fs";

const CHAR = String.raw`'\\u\{([0-9a-f]+)\}'`;

function section(text, start) {
  const i = text.indexOf(start);
  if (i < 0) throw new Error(`no ${start}`);
  const j = text.indexOf("];", i);
  return text.slice(i, j);
}

function ranges(body) {
  const re = new RegExp(String.raw`\(` + CHAR + String.raw`,\s*` + CHAR + String.raw`\)`, "g");
  return [...body.matchAll(re)].map((m) => [parseInt(m[1], 16), parseInt(m[2], 16)]);
}

function valued(body) {
  const re = new RegExp(String.raw`\(` + CHAR + String.raw`,\s*` + CHAR + String.raw`,\s*(\w+)\)`, "g");
  return [...body.matchAll(re)].map((m) => [parseInt(m[1], 16), parseInt(m[2], 16), m[3]]);
}

function merge(rs) {
  const out = [];
  for (const [a, b] of [...rs].sort((x, y) => x[0] - y[0] || x[1] - y[1])) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** The text of a rustdoc source page (`*.rs.html`): tags and line numbers removed. */
function rustdocSource(html) {
  const entities = { "&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#39;": "'", "&#x27;": "'" };
  return html
    .replace(/<[^>]+>/g, "")
    .replace(/&(?:lt|gt|amp|quot|#39|#x27);/g, (e) => entities[e])
    .split("\n")
    .map((line) => line.replace(/^\d+/, ""))
    .join("\n");
}

/**
 * The code points of a `skip_search` table of `unicode_data.rs` (module
 * `name`), as ranges: the same lookup the standard library does, run for
 * every non-ASCII code point.
 */
function skipListRanges(src, name) {
  const mod = src.slice(src.indexOf(`pub mod ${name} {`));
  const runs = [...section(mod, "static SHORT_OFFSET_RUNS").matchAll(/ShortOffsetRunHeader::new\((\d+),\s*(\d+)\)/g)].map(
    (m) => ({ start: Number(m[1]), prefix: Number(m[2]) }),
  );
  const offsetsBody = section(mod, "static OFFSETS");
  const offsets = offsetsBody
    .slice(offsetsBody.indexOf("= [") + 3)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const minimum = Number((mod.match(/\(c as u32\) >= (0x[0-9a-f]+|\d+) &&/) ?? [, "0"])[1]);
  const lookup = (c) => {
    if (c < minimum) return false;
    // binary_search_by_key(&(needle << 11), |h| h.0 << 11): compare prefix sums.
    let lo = 0;
    let hi = runs.length;
    let found = -1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (runs[mid].prefix === c) {
        found = mid;
        break;
      }
      if (runs[mid].prefix < c) lo = mid + 1;
      else hi = mid;
    }
    const lastIdx = found >= 0 ? found + 1 : lo;
    let offsetIdx = runs[lastIdx].start;
    const length = lastIdx + 1 < runs.length ? runs[lastIdx + 1].start - offsetIdx : offsets.length - offsetIdx;
    const prev = lastIdx > 0 ? runs[lastIdx - 1].prefix : 0;
    const total = c - prev;
    let prefixSum = 0;
    for (let k = 0; k < length - 1; k++) {
      prefixSum += offsets[offsetIdx];
      if (prefixSum > total) break;
      offsetIdx++;
    }
    return offsetIdx % 2 === 1;
  };
  const out = [];
  for (let c = 0x80; c <= 0x10ffff; c++) {
    if (!lookup(c)) continue;
    const last = out[out.length - 1];
    if (last && last[1] === c - 1) last[1] = c;
    else out.push([c, c]);
  }
  return out;
}

function fmt(name, doc, values, perLine = 16) {
  const lines = [`/** ${doc} */`, `export const ${name}: readonly number[] = [`];
  for (let i = 0; i < values.length; i += perLine) lines.push("  " + values.slice(i, i + perLine).join(", ") + ",");
  lines.push("];");
  return lines.join("\n");
}

function main() {
  const [tablesPath, unicodeDataPath, out] = process.argv.slice(2);
  if (!out) {
    console.error("usage: gen_unicode_tables.mjs UNICODE_SEGMENTATION/src/tables.rs UNICODE_DATA.rs[.html] OUT.ts");
    process.exit(2);
  }
  const text = readFileSync(tablesPath, "utf8");
  const version = text.match(/UNICODE_VERSION: \(u64, u64, u64\) = \((\d+), (\d+), (\d+)\)/).slice(1).map(Number);
  const crate = (tablesPath.match(/unicode-segmentation-[0-9.]+/) ?? ["unicode-segmentation"])[0];
  let core = readFileSync(unicodeDataPath, "utf8");
  if (unicodeDataPath.endsWith(".html")) core = rustdocSource(core);
  const coreVersion = core.match(/UNICODE_VERSION: \(u8, u8, u8\) = \((\d+), (\d+), (\d+)\)/).slice(1).map(Number);
  if (coreVersion.join(".") !== version.join(".")) {
    throw new Error(`Unicode ${version.join(".")} in ${crate} but ${coreVersion.join(".")} in the standard library`);
  }

  const word = valued(section(text, "const word_cat_table"));
  const cats = [...new Set(word.map(([, , c]) => c))].sort();
  const emoji = valued(section(text, "const emoji_cat_table"))
    .filter(([, , c]) => c === "EC_Extended_Pictographic")
    .map(([a, b]) => [a, b]);
  const alnum = merge([...ranges(section(text, "const Alphabetic_table")), ...ranges(section(text, "const N_table"))]);

  // Cased: ASCII letters, then the table. Case_Ignorable: ' . : ^ ` (as
  // char::is_case_ignorable has them), then the table.
  const cased = merge([[0x41, 0x5a], [0x61, 0x7a], ...skipListRanges(core, "cased")]);
  const ignorable = merge([
    ...[0x27, 0x2e, 0x3a, 0x5e, 0x60].map((c) => [c, c]),
    ...skipListRanges(core, "case_ignorable"),
  ]);

  const flat = (rs) => rs.flatMap(([a, b]) => [a, b]);
  const parts = [
    `/**`,
    ` * Unicode ${version.join(".")} tables of the wordfreq example, generated by`,
    ` * \`guest-sdk/js/scripts/gen_unicode_tables.mjs\` from the tables of the Rust`,
    ` * crate ${crate} (\`src/tables.rs\`) and of the Rust standard library`,
    ` * (\`core/src/unicode/unicode_data.rs\`). Do not edit.`,
    ` *`,
    ` * @module`,
    ` */`,
    "",
    `/** The Unicode version of these tables. */`,
    `export const UNICODE_VERSION: readonly [number, number, number] = [${version.join(", ")}];`,
    "",
    `/** Word_Break categories, by index (WORD_CATS holds indexes). */`,
    `export const CATEGORIES: readonly string[] = [${cats.map((c) => JSON.stringify(c.slice(3))).join(", ")}];`,
    "",
    fmt("WORD_STARTS", "Word_Break ranges: WORD_STARTS[i] to WORD_ENDS[i] (inclusive) has category CATEGORIES[WORD_CATS[i]]; every other character is Any.", word.map(([a]) => a)),
    "",
    fmt("WORD_ENDS", "See WORD_STARTS.", word.map(([, b]) => b)),
    "",
    fmt("WORD_CATS", "See WORD_STARTS.", word.map(([, , c]) => cats.indexOf(c)), 32),
    "",
    fmt("EXTENDED_PICTOGRAPHIC", "Extended_Pictographic ranges (start, end, start, end ..., inclusive).", flat(emoji)),
    "",
    fmt("ALPHANUMERIC", "Alphabetic or General_Category=Number ranges (start, end ..., inclusive).", flat(alnum)),
    "",
    fmt("CASED", "Cased ranges (start, end ..., inclusive), as char::is_cased.", flat(cased)),
    "",
    fmt("CASE_IGNORABLE", "Case_Ignorable ranges (start, end ..., inclusive), as char::is_case_ignorable.", flat(ignorable)),
    "",
  ];
  writeFileSync(out, parts.join("\n"));
  console.log(`wrote ${out}: ${word.length} word ranges, ${cased.length} cased, ${ignorable.length} case-ignorable`);
}

main();
