"""Unicode word segmentation (UAX #29), ported from the Rust crate
unicode-segmentation 1.13.3 (``split_word_bounds`` and ``unicode_words``),
with the crate's own Unicode tables (``uax29_tables.py``), so that the
Python wordfreq agent splits text exactly as the Rust one does.

As in the crate, an all-ASCII text takes a fast path (here one regular
expression); any other text goes through the UAX #29 state machine.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Iterator, List, Optional

import uax29_tables as _t

__all__ = ["split_word_bounds", "unicode_words"]

# Word_Break categories.
(
    ALETTER,
    CR,
    DOUBLE_QUOTE,
    EXTEND,
    EXTENDNUMLET,
    FORMAT,
    HEBREW_LETTER,
    KATAKANA,
    LF,
    MIDLETTER,
    MIDNUM,
    MIDNUMLET,
    NEWLINE,
    NUMERIC,
    REGIONAL_INDICATOR,
    SINGLE_QUOTE,
    WSEGSPACE,
    ZWJ,
) = range(18)
ANY = 18
assert _t.CATEGORIES[ZWJ] == "ZWJ" and _t.CATEGORIES[ALETTER] == "ALetter" and len(_t.CATEGORIES) == 18

# States of the forward state machine (UWordBoundsState).
(
    S_START,
    S_LETTER,
    S_HLETTER,
    S_NUMERIC,
    S_KATAKANA,
    S_EXTENDNUMLET,
    S_REGIONAL_HALF,
    S_REGIONAL_FULL,
    S_ZWJ,
    S_EMOJI,
    S_WSEGSPACE,
    # FormatExtend(...) subtypes.
    FE_ACCEPT_NONE,
    FE_REQUIRE_LETTER,
    FE_REQUIRE_HLETTER,
    FE_ACCEPT_QLETTER,
    FE_REQUIRE_NUMERIC,
) = range(16)

_FORMAT_EXTEND = (FE_ACCEPT_NONE, FE_REQUIRE_LETTER, FE_REQUIRE_HLETTER, FE_ACCEPT_QLETTER, FE_REQUIRE_NUMERIC)

_ASCII_CATS: List[int] = []


def _lookup(c: int) -> int:
    i = bisect_right(_t.WORD_STARTS, c) - 1
    if i >= 0 and c <= _t.WORD_ENDS[i]:
        return _t.WORD_CATS[i]
    return ANY


_ASCII_CATS = [_lookup(c) for c in range(128)]


def word_category(ch: str) -> int:
    """The Word_Break category of ``ch``."""
    c = ord(ch)
    if c < 128:
        return _ASCII_CATS[c]
    return _lookup(c)


def _in_pairs(table: "tuple[int, ...]", c: int) -> bool:
    # table: start, end, start, end ... sorted; find the last start <= c.
    lo, hi = 0, len(table) // 2
    while lo < hi:
        mid = (lo + hi) // 2
        if table[2 * mid] <= c:
            lo = mid + 1
        else:
            hi = mid
    return lo > 0 and c <= table[2 * (lo - 1) + 1]


def is_extended_pictographic(ch: str) -> bool:
    return _in_pairs(_t.EXTENDED_PICTOGRAPHIC, ord(ch))


def is_alphanumeric(ch: str) -> bool:
    """Alphabetic, or General_Category=Number (Rust's ``char::is_alphanumeric``)."""
    c = ord(ch)
    if c < 128:
        return ch.isalnum()
    return _in_pairs(_t.ALPHANUMERIC, c)


def split_word_bounds(s: str) -> Iterator[str]:
    """The pieces of ``s`` between word boundaries (UAX #29), in order;
    joined, they give ``s`` back."""
    n = len(s)
    start = 0
    cached: Optional[int] = None
    while start < n:
        take_curr = True
        take_cat = True
        idx = start
        saveidx = start
        state = S_START
        cat = ANY
        savecat = ANY
        skipped_format_extend = False
        i = start
        while i < n:
            idx = i
            ch = s[i]
            prev_zwj = cat == ZWJ
            if cached is None:
                cat = word_category(ch)
            else:
                cat = cached
                cached = None
            take_cat = True
            i += 1
            # WB4: skip Extend, Format and ZWJ (except at the start).
            if state != S_START and (cat == EXTEND or cat == FORMAT or cat == ZWJ):
                skipped_format_extend = True
                continue
            # WB3c
            if prev_zwj and is_extended_pictographic(ch):
                state = S_EMOJI
                continue
            if state == S_START:
                if cat == CR:
                    if idx + 1 < n and word_category(s[idx + 1]) == LF:
                        idx += 1  # WB3
                    break  # WB3a
                if cat == ALETTER:
                    state = S_LETTER
                elif cat == HEBREW_LETTER:
                    state = S_HLETTER
                elif cat == NUMERIC:
                    state = S_NUMERIC
                elif cat == KATAKANA:
                    state = S_KATAKANA
                elif cat == EXTENDNUMLET:
                    state = S_EXTENDNUMLET
                elif cat == REGIONAL_INDICATOR:
                    state = S_REGIONAL_HALF
                elif cat == LF or cat == NEWLINE:
                    break  # WB3a
                elif cat == ZWJ:
                    state = S_ZWJ
                elif cat == WSEGSPACE:
                    state = S_WSEGSPACE
                else:
                    if idx + 1 < n:
                        ncat = word_category(s[idx + 1])
                        if ncat == FORMAT or ncat == EXTEND or ncat == ZWJ:  # WB4
                            state = FE_ACCEPT_NONE
                            cached = ncat
                            continue
                    break  # WB999
            elif state == S_WSEGSPACE:
                if cat == WSEGSPACE and not skipped_format_extend:
                    state = S_WSEGSPACE
                else:
                    take_curr = False
                    break
            elif state == S_ZWJ:
                take_curr = False
                break
            elif state == S_LETTER or state == S_HLETTER:
                if cat == ALETTER:
                    state = S_LETTER  # WB5
                elif cat == HEBREW_LETTER:
                    state = S_HLETTER  # WB5
                elif cat == NUMERIC:
                    state = S_NUMERIC  # WB9
                elif cat == EXTENDNUMLET:
                    state = S_EXTENDNUMLET  # WB13a
                elif cat == DOUBLE_QUOTE and state == S_HLETTER:
                    savecat = cat
                    saveidx = idx
                    state = FE_REQUIRE_HLETTER  # WB7b
                elif cat == SINGLE_QUOTE and state == S_HLETTER:
                    state = FE_ACCEPT_QLETTER  # WB7a
                elif cat == MIDLETTER or cat == MIDNUMLET or cat == SINGLE_QUOTE:
                    savecat = cat
                    saveidx = idx
                    state = FE_REQUIRE_LETTER  # WB6
                else:
                    take_curr = False
                    break
            elif state == S_NUMERIC:
                if cat == NUMERIC:
                    state = S_NUMERIC  # WB8
                elif cat == ALETTER:
                    state = S_LETTER  # WB10
                elif cat == HEBREW_LETTER:
                    state = S_HLETTER  # WB10
                elif cat == EXTENDNUMLET:
                    state = S_EXTENDNUMLET  # WB13a
                elif cat == MIDNUM or cat == MIDNUMLET or cat == SINGLE_QUOTE:
                    savecat = cat
                    saveidx = idx
                    state = FE_REQUIRE_NUMERIC  # WB12
                else:
                    take_curr = False
                    break
            elif state == S_KATAKANA:
                if cat == KATAKANA:
                    state = S_KATAKANA  # WB13
                elif cat == EXTENDNUMLET:
                    state = S_EXTENDNUMLET  # WB13a
                else:
                    take_curr = False
                    break
            elif state == S_EXTENDNUMLET:
                if cat == EXTENDNUMLET:
                    state = S_EXTENDNUMLET  # WB13a
                elif cat == ALETTER:
                    state = S_LETTER  # WB13b
                elif cat == HEBREW_LETTER:
                    state = S_HLETTER
                elif cat == NUMERIC:
                    state = S_NUMERIC
                elif cat == KATAKANA:
                    state = S_KATAKANA
                else:
                    take_curr = False
                    break
            elif state == S_REGIONAL_FULL:
                take_curr = False
                break
            elif state == S_REGIONAL_HALF:
                if cat == REGIONAL_INDICATOR:
                    state = S_REGIONAL_FULL  # WB13c
                else:
                    take_curr = False
                    break
            elif state == S_EMOJI:
                take_curr = False
                break
            else:  # FormatExtend(t)
                t = state
                if t == FE_REQUIRE_NUMERIC and cat == NUMERIC:
                    state = S_NUMERIC  # WB11
                elif (t == FE_REQUIRE_LETTER or t == FE_ACCEPT_QLETTER) and cat == ALETTER:
                    state = S_LETTER  # WB7
                elif (t == FE_REQUIRE_LETTER or t == FE_ACCEPT_QLETTER) and cat == HEBREW_LETTER:
                    state = S_HLETTER  # WB7a
                elif t == FE_REQUIRE_HLETTER and cat == HEBREW_LETTER:
                    state = S_HLETTER  # WB7b
                elif t == FE_ACCEPT_NONE or t == FE_ACCEPT_QLETTER:
                    take_curr = False  # emit the Format|Extend characters
                    take_cat = False
                    break
                else:
                    break  # rewound below

        if state in (FE_REQUIRE_LETTER, FE_REQUIRE_HLETTER, FE_REQUIRE_NUMERIC):
            # Looked for something and did not find it: back up.
            idx = saveidx
            cat = savecat
            take_curr = False

        if take_curr:
            idx += 1
            cached = None
        elif take_cat:
            cached = cat
        else:
            cached = None
        yield s[start:idx]
        start = idx


# The crate's ASCII fast path (AsciiWordBoundIter) as one expression: a
# run of [A-Za-z0-9_], with `.` `,` `;` `'` between digits and `'` `.` `:`
# between letters. Its other pieces (spaces, CR LF, single characters) hold
# no alphanumeric character, so unicode_words drops them anyway.
_ASCII_WORD = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_]|(?<=[0-9])[.,;'](?=[0-9])|(?<=[A-Za-z])['.:](?=[A-Za-z]))*")
_ASCII_ALNUM = re.compile(r"[A-Za-z0-9]")


def unicode_words(s: str) -> List[str]:
    """The words of ``s``: the pieces between word boundaries that hold an
    alphabetic or numeric character (the crate's ``unicode_words``)."""
    if s.isascii():
        return [w for w in _ASCII_WORD.findall(s) if _ASCII_ALNUM.search(w)]
    return [w for w in split_word_bounds(s) if any(is_alphanumeric(c) for c in w)]
