"""Example Orbit agent: word frequencies (a port of ``examples/wordfreq``).

The input is text. The agent splits it into words at Unicode word
boundaries (UAX #29, punctuation dropped: ``uax29.py``, a port of the Rust
crate unicode-segmentation's ``unicode_words``), lowercases them and
returns::

    {"total_words":N,"distinct_words":M,"top":[["the",123],...],"cached":false}

where ``top`` holds the 20 most frequent words, by count descending then
word ascending. The result is cached under ``wordfreq/<sha256 hex of the
input>`` for one hour; a cache hit returns the cached result with
``"cached":true`` and logs ``cache hit``. The output, cache key and cache
entries are the same as the Rust example's, byte for byte.
"""

import hashlib
import json
from typing import Any, Dict, List, Optional, Tuple

import orbit
from uax29 import unicode_words

TOP = 20
"""How many words the result lists."""
TTL_MS = 60 * 60 * 1000
"""How long a result stays cached."""


def analyse(text: str) -> Dict[str, Any]:
    """Word counts of ``text``, as the result object (fields in order)."""
    counts: Dict[str, int] = {}
    total = 0
    for word in unicode_words(text):
        total += 1
        w = word.lower()
        counts[w] = counts.get(w, 0) + 1
    top = sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))[:TOP]
    return {"total_words": total, "distinct_words": len(counts), "top": [[w, c] for w, c in top], "cached": False}


def to_json(result: Dict[str, Any]) -> str:
    # serde_json's compact form: no spaces, non-ASCII kept as is.
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False)


def _u64(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**64


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    obj: Dict[str, Any] = {}
    for k, v in pairs:
        if k in obj:
            raise ValueError(f"duplicate field {k}")
        obj[k] = v
    return obj


def parse_cached(data: bytes) -> Optional[Dict[str, Any]]:
    """The result in a cache entry, if it has the shape this agent writes
    (as strict as the Rust agent's serde: every field, of its type)."""
    try:
        obj = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    total, distinct, top, cached = (obj.get(k) for k in ("total_words", "distinct_words", "top", "cached"))
    if not (_u64(total) and _u64(distinct) and isinstance(cached, bool) and isinstance(top, list)):
        return None
    for entry in top:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and _u64(entry[1])):
            return None
    return {"total_words": total, "distinct_words": distinct, "top": top, "cached": cached}


@orbit.agent
def run(input: str) -> str:
    key = "wordfreq/" + hashlib.sha256(input.encode("utf-8")).hexdigest()

    data = orbit.cache.get(key)
    if data is not None:
        # Only trust an entry in the shape this agent writes.
        cached = parse_cached(data)
        if cached is not None:
            orbit.log.info("cache hit")
            cached["cached"] = True
            return to_json(cached)
        orbit.log.warn("ignoring a malformed cache entry")

    result = to_json(analyse(input))
    orbit.cache.set(key, result.encode("utf-8"), ttl_ms=TTL_MS)
    orbit.log.debug(f"cached result under {key}")
    return result
