/**
 * Markdown to HTML as pulldown-cmark 0.13 renders it (tables, footnotes and
 * strikethrough enabled), for the markdown example. A port of
 * `guest-sdk/python/examples/markdown/render.py`.
 *
 * Parsing is markdown-it 14.3.3's (CommonMark, with its GFM table rule
 * and markdown-it-footnote's footnotes; markdown-it-py, which the Python
 * port uses, is a port of markdown-it); the HTML is written by a port of
 * pulldown-cmark's `html.rs` writer (its escaping, newlines, table,
 * footnote and strikethrough markup), so the output matches
 * pulldown-cmark's `html::push_html` byte for byte on CommonMark input
 * (all 652 examples of the spec).
 * Strikethrough follows pulldown-cmark's rules (`~` and `~~`, an opener
 * matching a closer of the same width, its own flanking rules), and so does
 * a table interrupting a paragraph (only with a leading `|`). Known
 * differences remain in corner cases of footnote definitions, link
 * reference definitions inside list items, table rows and trailing tabs
 * (see the README).
 *
 * The component's JavaScript engine is an interpreter, so two of
 * markdown-it's per-character loops are replaced by native string
 * searches that give the same results: the line scan of its block state
 * (`LineStateBlock`) and its `text` rule.
 *
 * @module
 */

import MarkdownIt from "markdown-it";
import StateBlock from "markdown-it/lib/rules_block/state_block.mjs";
import type StateInline from "markdown-it/lib/rules_inline/state_inline.mjs";
import type { Delimiter } from "markdown-it/lib/rules_inline/state_inline.mjs";
import type Token from "markdown-it/lib/token.mjs";
import footnote from "markdown-it-footnote";
import gfmTable from "markdown-it/lib/rules_block/table.mjs";

const { isMdAsciiPunct, isPunctChar, unescapeAll } = new MarkdownIt().utils;

/** Rust's `char::is_whitespace` (Unicode White_Space). */
function isWhitespace(c: number): boolean {
  return (
    (c >= 0x09 && c <= 0x0d) ||
    c === 0x20 ||
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

/** `s` without leading and trailing White_Space (Rust's `str::trim`). */
function trimWhitespace(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isWhitespace(s.charCodeAt(a))) a++;
  while (b > a && isWhitespace(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

function isPunctuation(c: number): boolean {
  return isMdAsciiPunct(c) || isPunctChar(String.fromCodePoint(c));
}

/** The code point at UTF-16 offset `i` of `s`. */
function codePointAt(s: string, i: number): number {
  return s.codePointAt(i) as number;
}

/** The code point that ends at UTF-16 offset `i` of `s` (`i` > 0). */
function codePointBefore(s: string, i: number): number {
  const low = s.charCodeAt(i - 1);
  if (low >= 0xdc00 && low <= 0xdfff && i >= 2) {
    const high = s.charCodeAt(i - 2);
    if (high >= 0xd800 && high <= 0xdbff) return (high - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000;
  }
  return low;
}

const TILDE = 0x7e;

/** pulldown-cmark's `delim_run_can_open` for a run of `~`. */
function tildeCanOpen(src: string, ix: number, run: number): boolean {
  if (ix + run >= src.length) return false;
  const next = codePointAt(src, ix + run);
  if (isWhitespace(next)) return false;
  if (ix === 0 || run > 1) return true;
  const prev = codePointBefore(src, ix);
  if (prev === TILDE && !isPunctuation(next)) return true;
  return isWhitespace(prev) || isPunctuation(prev);
}

/** pulldown-cmark's `delim_run_can_close` for a run of `~`. */
function tildeCanClose(src: string, ix: number, run: number): boolean {
  if (ix === 0) return false;
  const prev = codePointBefore(src, ix);
  if (isWhitespace(prev)) return false;
  if (ix + run >= src.length) return true;
  const next = codePointAt(src, ix + run);
  if (run > 1 && !isPunctuation(prev)) return true;
  if (prev === TILDE) return true;
  return isWhitespace(next) || isPunctuation(next);
}

// `~~` and `~` runs get different markers, so that balance_pairs matches an
// opener only with a closer of the same width, as pulldown-cmark does.
const TILDE2 = TILDE;
const TILDE1 = TILDE + 0x110000;

function tilde(state: StateInline, silent: boolean): boolean {
  const start = state.pos;
  const src = state.src;
  if (silent || src.charCodeAt(start) !== TILDE) return false;
  let end = start;
  while (end < state.posMax && src.charCodeAt(end) === TILDE) end++;
  const run = end - start;
  const token = state.push("text", "", 0);
  token.content = "~".repeat(run);
  if (run <= 2) {
    const open = tildeCanOpen(src, start, run);
    const close = tildeCanClose(src, start, run);
    if (open || close) {
      state.delimiters.push({
        marker: run === 2 ? TILDE2 : TILDE1,
        length: 0,
        token: state.tokens.length - 1,
        end: -1,
        open,
        close,
      });
    }
  }
  state.pos = end;
  return true;
}

function tildePairs(state: StateInline): boolean {
  const pairs = (delimiters: Delimiter[]): void => {
    for (const d of delimiters) {
      if (d.end === -1 || (d.marker !== TILDE1 && d.marker !== TILDE2)) continue;
      const opener = state.tokens[d.token] as Token;
      const closer = state.tokens[(delimiters[d.end] as Delimiter).token] as Token;
      opener.type = "s_open";
      opener.nesting = 1;
      closer.type = "s_close";
      closer.nesting = -1;
      for (const token of [opener, closer]) {
        token.tag = "s";
        token.markup = token.content;
        token.content = "";
      }
    }
  };
  pairs(state.delimiters);
  for (const meta of state.tokens_meta) {
    if (meta && meta.delimiters) pairs(meta.delimiters);
  }
  return true;
}

function isCodeBlock(state: StateBlock, line: number): boolean {
  return state.sCount[line]! - state.blkIndent >= 4;
}

function table(state: StateBlock, startLine: number, endLine: number, silent: boolean): boolean {
  // Called with silent=true when a paragraph asks whether a table
  // interrupts it: pulldown-cmark lets only a header row with a leading `|`
  // do that.
  if (silent) {
    const pos = state.bMarks[startLine]! + state.tShift[startLine]!;
    if (state.src.charCodeAt(pos) !== 0x7c) return false;
  }
  return gfmTable(state, startLine, endLine, silent);
}

// markdown-it's `text` rule (rules_inline/text.mjs) takes the run of
// characters up to the next one that may start markup; it walks it one
// character at a time in JavaScript, which the component's interpreter
// makes the parser's most expensive loop. The same run, found with one
// regular-expression search.
const TERMINATOR = /[\n!#$%&*+\-:<=>@[\\\]^_`{}~]/g;

function text(state: StateInline, silent: boolean): boolean {
  const pos = state.pos;
  TERMINATOR.lastIndex = pos;
  const found = TERMINATOR.exec(state.src);
  const end = found === null ? state.posMax : Math.min(found.index, state.posMax);
  if (end <= pos) return false;
  if (!silent) state.pending += state.src.slice(pos, end);
  state.pos = end;
  return true;
}

/**
 * markdown-it's block state, whose constructor finds the lines of the
 * source (their starts, ends and indentation) one character at a time;
 * this one finds the line ends with `indexOf` and walks only the
 * indentation. The same lines and marks (a last line of blanks without a
 * newline is not a line, as in markdown-it).
 */
export class LineStateBlock extends StateBlock {
  constructor(src: string, md: MarkdownIt, env: unknown, tokens: Token[]) {
    super("", md, env, tokens);
    this.src = src;
    const bMarks: number[] = [];
    const eMarks: number[] = [];
    const tShift: number[] = [];
    const sCount: number[] = [];
    const bsCount: number[] = [];
    const len = src.length;
    let start = 0;
    while (start < len) {
      const nl = src.indexOf("\n", start);
      const end = nl < 0 ? len : nl;
      let pos = start;
      let offset = 0;
      for (; pos < end; pos++) {
        const ch = src.charCodeAt(pos);
        if (ch === 0x20) offset++;
        else if (ch === 0x09) offset += 4 - (offset % 4);
        else break;
      }
      if (nl < 0 && pos === end) break;
      bMarks.push(start);
      eMarks.push(end);
      tShift.push(pos - start);
      sCount.push(offset);
      bsCount.push(0);
      start = end + 1;
    }
    // The fake entry markdown-it adds to simplify bounds checks.
    bMarks.push(len);
    eMarks.push(len);
    tShift.push(0);
    sCount.push(0);
    bsCount.push(0);
    this.bMarks = bMarks;
    this.eMarks = eMarks;
    this.tShift = tShift;
    this.sCount = sCount;
    this.bsCount = bsCount;
    this.lineMax = bMarks.length - 1;
  }
}

type BlockRule = (state: StateBlock, startLine: number, endLine: number, silent: boolean) => boolean;

function parser(): MarkdownIt {
  const md = new MarkdownIt("commonmark").enable("table").use(footnote);
  md.block.State = LineStateBlock;
  md.block.ruler.at("table", table, { alt: ["paragraph", "reference"] });
  // markdown-it-footnote's definitions may start indented by 4 or more,
  // where CommonMark (and markdown-it-py's port of the plugin) sees code.
  const rules = (md.block.ruler as unknown as { __rules__: { name: string; fn: BlockRule }[] }).__rules__;
  const footnoteDef = rules.find((r) => r.name === "footnote_def")!.fn;
  md.block.ruler.at(
    "footnote_def",
    (state: StateBlock, startLine: number, endLine: number, silent: boolean) =>
      !isCodeBlock(state, startLine) && footnoteDef(state, startLine, endLine, silent),
    { alt: ["paragraph", "reference"] },
  );
  // Footnotes as pulldown-cmark has them: no inline footnotes (^[...]), and
  // the definitions kept where they are.
  md.inline.ruler.disable("footnote_inline");
  md.core.ruler.disable("footnote_tail");
  md.inline.ruler.at("text", text);
  md.inline.ruler.before("emphasis", "tilde", tilde);
  md.inline.ruler2.before("emphasis", "tilde", tildePairs);
  // pulldown-cmark neither normalizes nor filters link destinations; the
  // writer escapes them (escapeHref).
  md.normalizeLink = (url: string) => url;
  md.normalizeLinkText = (url: string) => url;
  md.validateLink = () => true;
  return md;
}

const MD = parser();

const HREF_SAFE = new Set(
  Array.from("!#$%()*+,-./0123456789:;=?@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~", (c) => c.charCodeAt(0)),
);

const HTML_SPECIAL = /[&<>"']/;
const BODY_SPECIAL = /[&<>]/;

// Both escapes test first and replace with native string replacements:
// most text has nothing to escape, and a replacement callback per match
// costs more in the component's interpreter.

/** pulldown-cmark's `escape_html`: `& < > " '`. */
export function escapeHtml(s: string): string {
  if (!HTML_SPECIAL.test(s)) return s;
  return s
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

/** pulldown-cmark's `escape_html_body_text`: `& < >`. */
export function escapeBody(s: string): string {
  if (!BODY_SPECIAL.test(s)) return s;
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

const ENCODER = new TextEncoder();

/** pulldown-cmark's `escape_href`: UTF-8 bytes outside a safe set percent-encoded, `&` and `'` as entities. */
export function escapeHref(s: string): string {
  let out = "";
  for (const b of ENCODER.encode(s)) {
    if (HREF_SAFE.has(b)) out += String.fromCharCode(b);
    else if (b === 0x26) out += "&amp;";
    else if (b === 0x27) out += "&#x27;";
    else out += "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

const ALIGN: Record<string, string> = {
  "text-align:left": ' style="text-align: left">',
  "text-align:center": ' style="text-align: center">',
  "text-align:right": ' style="text-align: right">',
};

/** pulldown-cmark's HtmlWriter over markdown-it tokens. */
class Writer {
  readonly out: string[] = [];
  private endNewline = true;
  private readonly numbers = new Map<string, number>();
  private inHead = false;

  write(s: string): void {
    this.out.push(s);
    if (s) this.endNewline = s.endsWith("\n");
  }

  /** A block start: on a new line. */
  block(s: string): void {
    this.write(this.endNewline ? s : "\n" + s);
  }

  text(s: string): void {
    this.out.push(escapeBody(s));
    this.endNewline = s.endsWith("\n");
  }

  number(name: string): number {
    let n = this.numbers.get(name);
    if (n === undefined) {
      n = this.numbers.size + 1;
      this.numbers.set(name, n);
    }
    return n;
  }

  blocks(tokens: readonly Token[]): void {
    for (const t of tokens) {
      switch (t.type) {
        case "inline":
          this.inline(t.children ?? []);
          break;
        case "paragraph_open":
          if (!t.hidden) this.block("<p>");
          break;
        case "paragraph_close":
          if (!t.hidden) this.write("</p>\n");
          break;
        case "heading_open":
          this.block(`<${t.tag}>`);
          break;
        case "heading_close":
          this.write(`</${t.tag}>\n`);
          break;
        case "bullet_list_open":
          this.block("<ul>\n");
          break;
        case "bullet_list_close":
          this.write("</ul>\n");
          break;
        case "ordered_list_open": {
          const value = t.attrGet("start");
          const start = value === null ? 1 : parseInt(value, 10);
          this.block(start === 1 ? "<ol>\n" : `<ol start="${start}">\n`);
          break;
        }
        case "ordered_list_close":
          this.write("</ol>\n");
          break;
        case "list_item_open":
          this.block("<li>");
          break;
        case "list_item_close":
          this.write("</li>\n");
          break;
        case "blockquote_open":
          this.block("<blockquote>\n");
          break;
        case "blockquote_close":
          this.write("</blockquote>\n");
          break;
        case "code_block":
        case "fence": {
          if (!this.endNewline) this.write("\n");
          const lang = t.type === "fence" ? (trimWhitespace(unescapeAll(t.info)).split(" ")[0] as string) : "";
          this.write(lang ? `<pre><code class="language-${escapeHtml(lang)}">` : "<pre><code>");
          if (t.content) this.text(t.content);
          this.write("</code></pre>\n");
          break;
        }
        case "html_block":
          this.write(t.content);
          break;
        case "hr":
          this.block("<hr />\n");
          break;
        case "table_open":
          this.write("<table>");
          break;
        case "thead_open":
          this.inHead = true;
          this.write("<thead><tr>");
          break;
        case "thead_close":
          this.inHead = false;
          this.write("</tr></thead><tbody>\n");
          break;
        case "tr_open":
          if (!this.inHead) this.write("<tr>");
          break;
        case "tr_close":
          if (!this.inHead) this.write("</tr>\n");
          break;
        case "th_open":
        case "td_open":
          this.write((this.inHead ? "<th" : "<td") + (ALIGN[String(t.attrGet("style") ?? "")] ?? ">"));
          break;
        case "th_close":
        case "td_close":
          this.write(this.inHead ? "</th>" : "</td>");
          break;
        case "table_close":
          this.write("</tbody></table>\n");
          break;
        case "footnote_reference_open": {
          const name = String((t.meta as { label: string }).label);
          this.block('<div class="footnote-definition" id="');
          this.write(escapeHtml(name));
          this.write(`"><sup class="footnote-definition-label">${this.number(name)}</sup>`);
          break;
        }
        case "footnote_reference_close":
          this.write("</div>\n");
          break;
        // tbody_open, tbody_close: written with thead and table.
      }
    }
  }

  inline(tokens: readonly Token[]): void {
    for (const t of tokens) {
      switch (t.type) {
        case "text":
          this.text(t.content);
          break;
        case "softbreak":
          this.write("\n");
          break;
        case "hardbreak":
          this.write("<br />\n");
          break;
        case "code_inline":
          this.write("<code>");
          this.out.push(escapeBody(t.content));
          this.write("</code>");
          break;
        case "em_open":
          this.write("<em>");
          break;
        case "em_close":
          this.write("</em>");
          break;
        case "strong_open":
          this.write("<strong>");
          break;
        case "strong_close":
          this.write("</strong>");
          break;
        case "s_open":
          this.write("<del>");
          break;
        case "s_close":
          this.write("</del>");
          break;
        case "link_open": {
          this.write('<a href="');
          this.write(escapeHref(String(t.attrGet("href") ?? "")));
          const title = String(t.attrGet("title") ?? "");
          if (title) {
            this.write('" title="');
            this.write(escapeHtml(title));
          }
          this.write('">');
          break;
        }
        case "link_close":
          this.write("</a>");
          break;
        case "image": {
          this.write('<img src="');
          this.write(escapeHref(String(t.attrGet("src") ?? "")));
          this.write('" alt="');
          this.rawText(t.children ?? []);
          const title = String(t.attrGet("title") ?? "");
          if (title) {
            this.write('" title="');
            this.write(escapeHtml(title));
          }
          this.write('" />');
          break;
        }
        case "html_inline":
          this.write(t.content);
          break;
        case "footnote_ref": {
          const name = String((t.meta as { label: string }).label);
          this.write('<sup class="footnote-reference"><a href="#');
          this.write(escapeHtml(name));
          this.write(`">${this.number(name)}</a></sup>`);
          break;
        }
      }
    }
  }

  /** An image's alt text: its text only, attribute-escaped. */
  rawText(tokens: readonly Token[]): void {
    for (const t of tokens) {
      switch (t.type) {
        case "text":
        case "code_inline":
        case "html_inline":
          this.out.push(escapeHtml(t.content));
          this.endNewline = t.content.endsWith("\n");
          break;
        case "softbreak":
        case "hardbreak":
          this.write(" ");
          break;
        case "image":
          this.rawText(t.children ?? []);
          break;
        case "footnote_ref":
          this.write(`[${this.number(String((t.meta as { label: string }).label))}]`);
          break;
      }
    }
  }
}

/** `markdown` rendered to HTML. */
export function render(markdown: string): string {
  const writer = new Writer();
  writer.blocks(MD.parse(markdown, {}));
  return writer.out.join("");
}
