"""Blob storage, private to the run's workspace (the WIT ``storage``
interface).

Keys are 1 to 512 bytes of UTF-8 made of ``/``-separated segments. A key may
not be absolute, may not contain ``.`` or ``..`` segments, empty segments,
NUL, backslashes or control characters; such keys give ``invalid-input``::

    orbit.storage.put_text("notes/latest.txt", input)
    body = orbit.storage.get("notes/latest.txt")            # bytes
    for meta in orbit.storage.list_all("notes/"):
        orbit.log.info(f"{meta.key}: {meta.size} bytes")

Every function raises :class:`orbit.Error` when the host refuses the call
(``not-found``, ``invalid-input``, ``too-large``, ``limit-exceeded``,
``internal``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Union

from . import _bindings as _b

__all__ = [
    "ObjectMeta",
    "ObjectPage",
    "put",
    "put_text",
    "get",
    "get_text",
    "head",
    "delete",
    "list",
    "list_all",
]

BytesLike = Union[bytes, bytearray, memoryview]

DEFAULT_CONTENT_TYPE = "application/octet-stream"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class ObjectMeta:
    """Metadata of one stored object."""

    key: str
    """The object's key."""
    size: int
    """Size of the object in bytes."""
    content_type: str
    """The content type given to :func:`put`."""
    modified_ms: int
    """Last write time, in milliseconds since the Unix epoch."""


@dataclass(frozen=True)
class ObjectPage:
    """One page of a listing."""

    objects: List[ObjectMeta]
    """Objects in ascending key order."""
    next_cursor: Optional[str]
    """Pass this back as ``cursor`` for the next page; ``None`` when done."""


def _meta(m: Any) -> ObjectMeta:
    return ObjectMeta(key=m.key, size=int(m.size), content_type=m.content_type, modified_ms=int(m.modified_ms))


def put(key: str, value: BytesLike, content_type: str = DEFAULT_CONTENT_TYPE) -> None:
    """Store ``value`` under ``key`` with ``content_type``, replacing any
    previous object.

    Raises:
        orbit.Error: ``invalid-input`` for a bad key or content type;
            ``too-large`` over the host's object cap; ``limit-exceeded``
            when the workspace's quota is full.
    """
    _b.call(
        "storage",
        "put",
        _b.text("key", key),
        _b.blob("value", value, "use storage.put_text() for str"),
        _b.text("content_type", content_type),
    )


def put_text(key: str, value: str, content_type: str = TEXT_CONTENT_TYPE) -> None:
    """Store the text ``value`` as UTF-8 under ``key``; see :func:`put`."""
    put(key, _b.text("value", value).encode("utf-8"), content_type)


def get(key: str) -> bytes:
    """The bytes of the object under ``key``.

    Raises:
        orbit.Error: ``not-found`` when absent; ``invalid-input`` for a bad
            key.
    """
    return bytes(_b.call("storage", "get", _b.text("key", key)))


def get_text(key: str, encoding: str = "utf-8") -> str:
    """The object under ``key`` decoded as text.

    Raises:
        orbit.Error: as :func:`get`; ``invalid-input`` when it does not
            decode.
    """
    return _b.decode(get(key), "the object", encoding)


def head(key: str) -> ObjectMeta:
    """The metadata of the object under ``key``.

    Raises:
        orbit.Error: ``not-found`` when absent; ``invalid-input`` for a bad
            key.
    """
    return _meta(_b.call("storage", "head", _b.text("key", key)))


def delete(key: str) -> bool:
    """Delete the object under ``key``; returns whether it existed."""
    return bool(_b.call("storage", "delete", _b.text("key", key)))


def list(prefix: str = "", cursor: Optional[str] = None, limit: int = 1000) -> ObjectPage:
    """One page of the objects whose key starts with ``prefix``, in ascending
    key order, starting after ``cursor`` (the previous page's
    :attr:`ObjectPage.next_cursor`), at most ``limit`` per page (the host
    may cap it further).

    Raises:
        orbit.Error: ``invalid-input`` for a malformed cursor or an
            over-long prefix.
    """
    page = _b.call(
        "storage", "list", _b.text("prefix", prefix), _b.opt_text("cursor", cursor), _b.u32("limit", limit)
    )
    return ObjectPage(objects=[_meta(m) for m in page.objects], next_cursor=page.next_cursor)


def list_all(prefix: str = "") -> List[ObjectMeta]:
    """Every object whose key starts with ``prefix``, following the cursors
    page by page.

    Raises:
        orbit.Error: as :func:`list`.
    """
    found: List[ObjectMeta] = []
    cursor: Optional[str] = None
    while True:
        page = list(prefix, cursor, 1000)
        found.extend(page.objects)
        # Stop on a cursor that does not advance, so a misbehaving host
        # cannot make this loop forever.
        if page.next_cursor is None or page.next_cursor == cursor:
            return found
        cursor = page.next_cursor
