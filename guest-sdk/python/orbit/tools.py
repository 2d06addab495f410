"""MCP tools of the MCP servers installed in the run's workspace
(``orbit tools add``), called through the host (the WIT ``tools``
interface)::

    for t in orbit.tools.list():
        orbit.log.info(f"{t.server}/{t.name}: {t.description}")
    result = orbit.tools.call("everything", "get-sum", {"a": 1, "b": 2})
    if not result.is_error:
        print(result.text())

Errors raise :class:`orbit.Error`: ``not-found`` (no such enabled server or
tool), ``permission-denied`` (the workspace's policy), ``invalid-input``
(arguments not a JSON object, or refused by the server), ``too-large``
(arguments or result over the host's caps), ``limit-exceeded`` (calls per
run), ``unavailable`` (the server could not be reached, died, or did not
answer in time).
"""

from __future__ import annotations

import builtins
import json as _json
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional

from . import _bindings as _b
from ._errors import Error

__all__ = ["ToolInfo", "ToolResult", "list", "call", "call_json"]


@dataclass(frozen=True)
class ToolInfo:
    """A tool a run may call."""

    server: str
    """The server's name in the workspace."""
    name: str
    """The tool's name on that server."""
    description: str
    """What it does; empty when the server says nothing."""
    input_schema: Any
    """The JSON Schema of its arguments, parsed (``None`` if it is not JSON)."""


@dataclass(frozen=True)
class ToolResult:
    """The result of a tool call."""

    content: Any
    """The MCP content array, parsed: blocks such as
    ``{"type": "text", "text": "..."}`` or ``{"type": "image", ...}``."""
    is_error: bool
    """The tool reported an error (MCP ``isError``); ``content`` says what."""

    def text(self) -> str:
        """The text of the result's ``text`` blocks, joined by newlines."""
        if not isinstance(self.content, (builtins.list, tuple)):
            return ""
        parts = [
            b["text"]
            for b in self.content
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        ]
        return "\n".join(parts)


def _parse(text: str) -> Any:
    try:
        return _json.loads(text)
    except ValueError:
        return None


def list() -> List[ToolInfo]:
    """The tools of the workspace's enabled servers that its policy allows.
    A server that cannot be reached contributes no tools."""
    return [
        ToolInfo(server=t.server, name=t.name, description=t.description, input_schema=_parse(t.input_schema))
        for t in _b.call("tools", "list")
    ]


def call(server: str, tool: str, arguments: Optional[Mapping[str, Any]] = None) -> ToolResult:
    """Call ``tool`` of ``server`` with ``arguments`` (a JSON-serializable
    mapping; ``None`` is ``{}``).

    Raises:
        orbit.Error: ``invalid-input`` when ``arguments`` do not serialize
            to a JSON object; otherwise see the module documentation.
    """
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        raise Error("invalid-input", "tool arguments must be a JSON object (a mapping)")
    try:
        text = _json.dumps(dict(arguments), separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise Error("invalid-input", f"tool arguments are not JSON: {e}") from None
    return call_json(server, tool, text)


def call_json(server: str, tool: str, arguments_json: str) -> ToolResult:
    """Call ``tool`` of ``server`` with ``arguments_json``, the JSON text of
    an object, passed on as is (the host checks it).

    Raises:
        orbit.Error: see the module documentation; ``internal`` when the
            host's content is not JSON.
    """
    r = _b.call("tools", "call", _b.text("server", server), _b.text("tool", tool), _b.text("arguments_json", arguments_json))
    try:
        content = _json.loads(r.content)
    except ValueError:
        raise Error("internal", "the tool result is not JSON") from None
    return ToolResult(content=content, is_error=bool(r.is_error))
