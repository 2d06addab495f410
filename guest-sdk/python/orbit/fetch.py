"""Outbound HTTP through the host (the WIT ``fetch`` interface).

The host applies the workspace's egress policy (private and internal
addresses are refused), injects each named secret where the secret's
binding says only when the request goes to a host, method and path the
secret is bound to, never follows redirects (a 3xx is returned as is), and
replaces any secret value in the response with ``[REDACTED]``. The guest
never holds a secret's value::

    resp = orbit.fetch.get("https://api.example.com/v1/me", secrets=["API_TOKEN"])
    if resp.ok:
        me = resp.json()
    resp = orbit.fetch.post("https://api.example.com/v1/notes", json={"text": "hi"})

A response with any status (404, 500 ...) is returned, not raised. Errors
raise :class:`orbit.Error`: ``invalid-input`` for a malformed URL, method or
header; ``permission-denied`` for a host the egress policy refuses, or a
secret that does not exist or is not bound to this request (the two look
the same); ``too-large`` for a response over the host's caps;
``unavailable`` when the server cannot be reached or times out;
``limit-exceeded`` past the run's request quota.
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _bindings as _b
from ._errors import Error

__all__ = ["Headers", "Request", "Response", "fetch", "request", "get", "post"]

Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]]]
"""Request headers: a mapping, or ``(name, value)`` pairs (names may repeat)."""

Body = Union[bytes, bytearray, memoryview, str]
"""A request body: bytes, or text sent as UTF-8."""


def _header_pairs(headers: Optional[Headers]) -> List[Tuple[str, str]]:
    if headers is None:
        return []
    items: Iterable[Any] = headers.items() if isinstance(headers, Mapping) else headers
    pairs: List[Tuple[str, str]] = []
    for item in items:
        name, value = item
        pairs.append((_b.text("header name", name), _b.text("header value", value)))
    return pairs


def _body(body: Optional[Body]) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    return _b.blob("body", body)


@dataclass(frozen=True)
class Response:
    """A response. Secret values in it have been replaced by ``[REDACTED]``."""

    status: int
    """The HTTP status code."""
    headers: List[Tuple[str, str]]
    """Headers as ``(name, value)`` pairs, in the order received."""
    body: bytes
    """The body, decompressed."""

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def header(self, name: str) -> Optional[str]:
        """The first header named ``name`` (case-insensitive), or ``None``."""
        wanted = name.lower()
        for n, v in self.headers:
            if n.lower() == wanted:
                return v
        return None

    def header_all(self, name: str) -> List[str]:
        """Every value of the headers named ``name`` (case-insensitive)."""
        wanted = name.lower()
        return [v for n, v in self.headers if n.lower() == wanted]

    def text(self, encoding: str = "utf-8") -> str:
        """The body as text.

        Raises:
            orbit.Error: ``invalid-input`` when the body does not decode.
        """
        return _b.decode(self.body, "the response body", encoding)

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            orbit.Error: ``invalid-input`` when the body is not JSON.
        """
        try:
            return _json.loads(self.text())
        except ValueError:
            raise Error("invalid-input", "the response body is not JSON") from None


@dataclass
class Request:
    """An outbound request (the WIT ``request`` record); send it with
    :meth:`send` or :func:`fetch`."""

    method: str
    """Method, such as ``"GET"`` or ``"POST"``."""
    url: str
    """Absolute ``http`` or ``https`` URL."""
    headers: List[Tuple[str, str]] = field(default_factory=lambda: [])
    """Headers as ``(name, value)`` pairs. ``host``, ``content-length``,
    ``transfer-encoding`` and hop-by-hop headers may not be set."""
    body: bytes = b""
    """Request body, possibly empty."""
    timeout_ms: Optional[int] = None
    """Time allowed for the whole request, in milliseconds; capped by the
    host and by the run's deadline."""
    secrets: List[str] = field(default_factory=lambda: [])
    """Names of workspace secrets for the host to inject."""

    def send(self) -> Response:
        """Send the request and wait for the whole response; see :func:`fetch`."""
        return fetch(self)


def fetch(req: Request) -> Response:
    """Send ``req`` and wait for the whole response.

    Raises:
        orbit.Error: see the module documentation.
    """
    wit = _b.interface("fetch")
    wire = wit.Request(
        method=_b.text("method", req.method),
        url=_b.text("url", req.url),
        headers=[wit.Header(name=n, value=v) for n, v in _header_pairs(req.headers)],
        body=_b.blob("body", req.body),
        timeout_ms=_b.opt_u32("timeout_ms", req.timeout_ms),
        secrets=[_b.text("secret name", s) for s in req.secrets],
    )
    resp = _b.call("fetch", "fetch", wire)
    return Response(
        status=int(resp.status),
        headers=[(h.name, h.value) for h in resp.headers],
        body=bytes(resp.body),
    )


def request(
    method: str,
    url: str,
    *,
    headers: Optional[Headers] = None,
    body: Optional[Body] = None,
    json: Any = None,
    timeout_ms: Optional[int] = None,
    secrets: Sequence[str] = (),
) -> Response:
    """Send a ``method`` request to ``url`` and wait for the whole response.

    Args:
        headers: a mapping or ``(name, value)`` pairs.
        body: bytes, or text sent as UTF-8.
        json: a value sent as a JSON body (instead of ``body``), with
            ``content-type: application/json`` unless ``headers`` set one.
        timeout_ms: time allowed for the whole request, in milliseconds.
        secrets: names of workspace secrets for the host to inject.

    Raises:
        orbit.Error: see the module documentation.
    """
    pairs = _header_pairs(headers)
    if json is not None:
        if body is not None:
            raise TypeError("give body or json, not both")
        data = _json.dumps(json, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if not any(n.lower() == "content-type" for n, _ in pairs):
            pairs.append(("content-type", "application/json"))
    else:
        data = _body(body)
    if isinstance(secrets, str):
        raise TypeError("secrets must be a list of names, not str")
    return fetch(Request(method, url, pairs, data, timeout_ms, [s for s in secrets]))


def get(
    url: str,
    *,
    headers: Optional[Headers] = None,
    timeout_ms: Optional[int] = None,
    secrets: Sequence[str] = (),
) -> Response:
    """Send a ``GET`` request; see :func:`request`."""
    return request("GET", url, headers=headers, timeout_ms=timeout_ms, secrets=secrets)


def post(
    url: str,
    body: Optional[Body] = None,
    *,
    json: Any = None,
    headers: Optional[Headers] = None,
    timeout_ms: Optional[int] = None,
    secrets: Sequence[str] = (),
) -> Response:
    """Send a ``POST`` request with ``body`` (or ``json``); see :func:`request`."""
    return request("POST", url, headers=headers, body=body, json=json, timeout_ms=timeout_ms, secrets=secrets)
