"""Markdown to HTML as pulldown-cmark 0.13 renders it (tables, footnotes
and strikethrough enabled), for the markdown example.

Parsing is markdown-it-py's (CommonMark, with its GFM table and
strikethrough rules and mdit-py-plugins' footnotes); the HTML is written by
a port of pulldown-cmark's ``html.rs`` writer (its escaping, newlines,
table, footnote and strikethrough markup), so the output matches
pulldown-cmark's ``html::push_html`` byte for byte on CommonMark input.
Strikethrough follows pulldown-cmark's rules (``~`` and ``~~``, an opener
matching a closer of the same width, its own flanking rules), and so does a
table interrupting a paragraph (only with a leading ``|``). Known
differences remain in corner cases of footnote definitions, link reference
definitions inside list items, and table rows (see the README).
"""

from typing import Dict, List, Sequence

from markdown_it import MarkdownIt
from markdown_it.common.utils import isMdAsciiPunct, isPunctChar, unescapeAll
from markdown_it.rules_block.state_block import StateBlock
from markdown_it.rules_block.table import table as _gfm_table
from markdown_it.rules_inline.state_inline import Delimiter, StateInline
from markdown_it.token import Token
from mdit_py_plugins.footnote import footnote_plugin

__all__ = ["render"]


def _is_whitespace(c: str) -> bool:
    # Rust's char::is_whitespace (Unicode White_Space).
    return c.isspace() and not "\x1c" <= c <= "\x1f"


def _is_punctuation(c: str) -> bool:
    return isMdAsciiPunct(ord(c)) or isPunctChar(c)


def _tilde_can_open(src: str, ix: int, run: int) -> bool:
    """pulldown-cmark's delim_run_can_open for a run of ``~``."""
    if ix + run >= len(src):
        return False
    next_char = src[ix + run]
    if _is_whitespace(next_char):
        return False
    if ix == 0 or run > 1:
        return True
    prev_char = src[ix - 1]
    if prev_char == "~" and not _is_punctuation(next_char):
        return True
    return _is_whitespace(prev_char) or _is_punctuation(prev_char)


def _tilde_can_close(src: str, ix: int, run: int) -> bool:
    """pulldown-cmark's delim_run_can_close for a run of ``~``."""
    if ix == 0:
        return False
    prev_char = src[ix - 1]
    if _is_whitespace(prev_char):
        return False
    if ix + run >= len(src):
        return True
    next_char = src[ix + run]
    if run > 1 and not _is_punctuation(prev_char):
        return True
    if prev_char == "~":
        return True
    return _is_whitespace(next_char) or _is_punctuation(next_char)


# `~~` and `~` runs get different markers, so that balance_pairs matches an
# opener only with a closer of the same width, as pulldown-cmark does.
_TILDE2 = 0x7E
_TILDE1 = 0x7E + 0x110000


def _tilde(state: StateInline, silent: bool) -> bool:
    start = state.pos
    src = state.src
    if silent or src[start] != "~":
        return False
    end = start
    while end < state.posMax and src[end] == "~":
        end += 1
    run = end - start
    token = state.push("text", "", 0)
    token.content = "~" * run
    if run <= 2:
        can_open = _tilde_can_open(src, start, run)
        can_close = _tilde_can_close(src, start, run)
        if can_open or can_close:
            marker = _TILDE2 if run == 2 else _TILDE1
            state.delimiters.append(Delimiter(marker, 0, len(state.tokens) - 1, -1, can_open, can_close))
    state.pos = end
    return True


def _tilde_pairs(state: StateInline) -> None:
    def pairs(delimiters: List[Delimiter]) -> None:
        for d in delimiters:
            if d.end == -1 or d.marker not in (_TILDE1, _TILDE2):
                continue
            opener = state.tokens[d.token]
            closer = state.tokens[delimiters[d.end].token]
            opener.type, opener.nesting = "s_open", 1
            closer.type, closer.nesting = "s_close", -1
            for token in (opener, closer):
                token.tag = "s"
                token.markup, token.content = token.content, ""

    pairs(state.delimiters)
    for meta in state.tokens_meta:
        if meta and "delimiters" in meta:
            pairs(meta["delimiters"])


def _table(state: StateBlock, startLine: int, endLine: int, silent: bool) -> bool:
    # Called with silent=True when a paragraph asks whether a table
    # interrupts it: pulldown-cmark lets only a header row with a leading
    # `|` do that.
    if silent:
        pos = state.bMarks[startLine] + state.tShift[startLine]
        if state.src[pos : pos + 1] != "|":
            return False
    return _gfm_table(state, startLine, endLine, silent)


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark").enable("table").use(footnote_plugin, inline=False)
    md.block.ruler.at("table", _table, {"alt": ["paragraph", "reference"]})
    md.inline.ruler.before("emphasis", "tilde", _tilde)
    md.inline.ruler2.before("emphasis", "tilde", _tilde_pairs)
    # pulldown-cmark keeps footnote definitions where they are.
    md.core.ruler.disable("footnote_tail")
    # pulldown-cmark neither normalizes nor filters link destinations; the
    # writer escapes them (escape_href).
    md.normalizeLink = lambda url: url  # type: ignore[method-assign]
    md.normalizeLinkText = lambda url: url  # type: ignore[method-assign, assignment]
    md.validateLink = lambda url: True  # type: ignore[method-assign]
    return md


_MD = _parser()

_HREF_SAFE = frozenset(b"!#$%()*+,-./0123456789:;=?@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~")
_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})
_BODY = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape_html(s: str) -> str:
    return s.translate(_HTML)


def escape_body(s: str) -> str:
    return s.translate(_BODY)


def escape_href(s: str) -> str:
    out: List[str] = []
    for b in s.encode("utf-8"):
        if b in _HREF_SAFE:
            out.append(chr(b))
        elif b == 0x26:
            out.append("&amp;")
        elif b == 0x27:
            out.append("&#x27;")
        else:
            out.append("%%%02X" % b)
    return "".join(out)


_ALIGN = {
    "text-align:left": ' style="text-align: left">',
    "text-align:center": ' style="text-align: center">',
    "text-align:right": ' style="text-align: right">',
}


class _Writer:
    """pulldown-cmark's HtmlWriter over markdown-it tokens."""

    def __init__(self) -> None:
        self.out: List[str] = []
        self.end_newline = True
        self.numbers: Dict[str, int] = {}
        self.in_head = False

    def write(self, s: str) -> None:
        self.out.append(s)
        if s:
            self.end_newline = s.endswith("\n")

    def block(self, s: str) -> None:
        """A block start: on a new line."""
        self.write(s if self.end_newline else "\n" + s)

    def text(self, s: str) -> None:
        self.out.append(escape_body(s))
        self.end_newline = s.endswith("\n")

    def number(self, name: str) -> int:
        return self.numbers.setdefault(name, len(self.numbers) + 1)

    def blocks(self, tokens: Sequence[Token]) -> None:
        for t in tokens:
            kind = t.type
            if kind == "inline":
                self.inline(t.children or [])
            elif kind == "paragraph_open":
                if not t.hidden:
                    self.block("<p>")
            elif kind == "paragraph_close":
                if not t.hidden:
                    self.write("</p>\n")
            elif kind == "heading_open":
                self.block(f"<{t.tag}>")
            elif kind == "heading_close":
                self.write(f"</{t.tag}>\n")
            elif kind == "bullet_list_open":
                self.block("<ul>\n")
            elif kind == "bullet_list_close":
                self.write("</ul>\n")
            elif kind == "ordered_list_open":
                value = t.attrGet("start")
                start = 1 if value is None else int(value)
                self.block("<ol>\n" if start == 1 else f'<ol start="{start}">\n')
            elif kind == "ordered_list_close":
                self.write("</ol>\n")
            elif kind == "list_item_open":
                self.block("<li>")
            elif kind == "list_item_close":
                self.write("</li>\n")
            elif kind == "blockquote_open":
                self.block("<blockquote>\n")
            elif kind == "blockquote_close":
                self.write("</blockquote>\n")
            elif kind == "code_block" or kind == "fence":
                if not self.end_newline:
                    self.write("\n")
                lang = unescapeAll(t.info).strip().split(" ")[0] if kind == "fence" else ""
                self.write(f'<pre><code class="language-{escape_html(lang)}">' if lang else "<pre><code>")
                if t.content:
                    self.text(t.content)
                self.write("</code></pre>\n")
            elif kind == "html_block":
                self.write(t.content)
            elif kind == "hr":
                self.block("<hr />\n")
            elif kind == "table_open":
                self.write("<table>")
            elif kind == "thead_open":
                self.in_head = True
                self.write("<thead><tr>")
            elif kind == "thead_close":
                self.in_head = False
                self.write("</tr></thead><tbody>\n")
            elif kind == "tr_open":
                if not self.in_head:
                    self.write("<tr>")
            elif kind == "tr_close":
                if not self.in_head:
                    self.write("</tr>\n")
            elif kind == "th_open" or kind == "td_open":
                tag = "<th" if self.in_head else "<td"
                self.write(tag + _ALIGN.get(str(t.attrGet("style") or ""), ">"))
            elif kind == "th_close" or kind == "td_close":
                self.write("</th>" if self.in_head else "</td>")
            elif kind == "table_close":
                self.write("</tbody></table>\n")
            elif kind == "footnote_reference_open":
                name = str(t.meta["label"])
                self.block('<div class="footnote-definition" id="')
                self.write(escape_html(name))
                self.write(f'"><sup class="footnote-definition-label">{self.number(name)}</sup>')
            elif kind == "footnote_reference_close":
                self.write("</div>\n")
            # tbody_open, tbody_close: written with thead and table.

    def inline(self, tokens: Sequence[Token]) -> None:
        for t in tokens:
            kind = t.type
            if kind == "text":
                self.text(t.content)
            elif kind == "softbreak":
                self.write("\n")
            elif kind == "hardbreak":
                self.write("<br />\n")
            elif kind == "code_inline":
                self.write("<code>")
                self.out.append(escape_body(t.content))
                self.write("</code>")
            elif kind == "em_open":
                self.write("<em>")
            elif kind == "em_close":
                self.write("</em>")
            elif kind == "strong_open":
                self.write("<strong>")
            elif kind == "strong_close":
                self.write("</strong>")
            elif kind == "s_open":
                self.write("<del>")
            elif kind == "s_close":
                self.write("</del>")
            elif kind == "link_open":
                self.write('<a href="')
                self.write(escape_href(str(t.attrGet("href") or "")))
                title = str(t.attrGet("title") or "")
                if title:
                    self.write('" title="')
                    self.write(escape_html(title))
                self.write('">')
            elif kind == "link_close":
                self.write("</a>")
            elif kind == "image":
                self.write('<img src="')
                self.write(escape_href(str(t.attrGet("src") or "")))
                self.write('" alt="')
                self.raw_text(t.children or [])
                title = str(t.attrGet("title") or "")
                if title:
                    self.write('" title="')
                    self.write(escape_html(title))
                self.write('" />')
            elif kind == "html_inline":
                self.write(t.content)
            elif kind == "footnote_ref":
                name = str(t.meta["label"])
                self.write('<sup class="footnote-reference"><a href="#')
                self.write(escape_html(name))
                self.write(f'">{self.number(name)}</a></sup>')

    def raw_text(self, tokens: Sequence[Token]) -> None:
        """An image's alt text: its text only, attribute-escaped."""
        for t in tokens:
            kind = t.type
            if kind in ("text", "code_inline", "html_inline"):
                self.out.append(escape_html(t.content))
                self.end_newline = t.content.endswith("\n")
            elif kind in ("softbreak", "hardbreak"):
                self.write(" ")
            elif kind == "image":
                self.raw_text(t.children or [])
            elif kind == "footnote_ref":
                self.write(f"[{self.number(str(t.meta['label']))}]")


def render(markdown: str) -> str:
    """``markdown`` rendered to HTML."""
    writer = _Writer()
    writer.blocks(_MD.parse(markdown))
    return "".join(writer.out)
