"""Key-value cache with time-to-live, private to the run's workspace (the
WIT ``cache`` interface).

Values are bytes; :func:`get_text` and :func:`set_text` handle UTF-8 text.
Counters are atomic::

    n = orbit.cache.increment("calls")          # 1, 2, 3 ...
    orbit.cache.set_text("last", input, ttl_ms=60_000)
    last = orbit.cache.get_text("last")          # None when absent or expired

Every function raises :class:`orbit.Error` when the host refuses the call:
``invalid-input`` for an empty, over-long or control-character key,
``too-large`` for a value over the host's cap, ``limit-exceeded`` when the
workspace's cache is full, ``internal`` when the host fails.
"""

from __future__ import annotations

from typing import Optional, Union

from . import _bindings as _b

__all__ = ["get", "get_text", "set", "set_text", "delete", "increment"]

BytesLike = Union[bytes, bytearray, memoryview]


def get(key: str) -> Optional[bytes]:
    """The value stored under ``key``; ``None`` when absent or expired."""
    value = _b.call("cache", "get", _b.text("key", key))
    return None if value is None else bytes(value)


def get_text(key: str, encoding: str = "utf-8") -> Optional[str]:
    """The value under ``key`` decoded as text; ``None`` when absent or
    expired.

    Raises:
        orbit.Error: as :func:`get`; ``invalid-input`` when the value does
            not decode.
    """
    value = get(key)
    return None if value is None else _b.decode(value, "the cached value", encoding)


def set(key: str, value: BytesLike, ttl_ms: Optional[int] = None) -> None:
    """Store ``value`` under ``key`` for ``ttl_ms`` milliseconds, or until it
    is deleted when ``ttl_ms`` is ``None``."""
    _b.call(
        "cache",
        "set",
        _b.text("key", key),
        _b.blob("value", value, "use cache.set_text() for str"),
        _b.opt_u64("ttl_ms", ttl_ms),
    )


def set_text(key: str, value: str, ttl_ms: Optional[int] = None, encoding: str = "utf-8") -> None:
    """Store the text ``value`` (encoded) under ``key``; see :func:`set`."""
    set(key, _b.text("value", value).encode(encoding), ttl_ms)


def delete(key: str) -> bool:
    """Delete the value under ``key``; returns whether a live value existed."""
    return bool(_b.call("cache", "delete", _b.text("key", key)))


def increment(key: str, delta: int = 1) -> int:
    """Atomically add ``delta`` to the signed 64-bit integer stored under
    ``key`` (absent or expired counts as 0) and return the new value. An
    existing TTL is kept.

    Raises:
        orbit.Error: ``invalid-input`` when the stored value is not a decimal
            integer (or ``delta`` is outside the signed 64-bit range);
            ``limit-exceeded`` on overflow.
    """
    return int(_b.call("cache", "increment", _b.text("key", key), _b.s64("delta", delta)))
