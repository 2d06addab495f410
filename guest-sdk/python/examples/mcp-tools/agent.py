"""Example Orbit agent: calls the MCP tools installed in its workspace (a
port of ``examples/mcp-tools``).

Expects two servers (see the Orbit README, "MCP tools"): ``everything``
(``@modelcontextprotocol/server-everything``) and ``time``
(``mcp-server-time``). It lists the tools it may call, echoes its input
through ``everything/echo``, adds two numbers with ``everything/get-sum``,
asks ``time/get_current_time`` for the time in UTC, and returns all of it
as one JSON object (keys sorted and compact, as serde_json writes it).
"""

import json
from typing import Any

import orbit


def _no_constants(name: str) -> Any:
    # serde_json refuses NaN and Infinity.
    raise ValueError(name)


@orbit.agent
def run(input: str) -> str:
    listed = orbit.tools.list()
    orbit.log.info(f"{len(listed)} tools available")
    names = [f"{t.server}/{t.name}" for t in listed]

    message = input if input else "hello from orbit"
    echo = orbit.tools.call("everything", "echo", {"message": message})
    total = orbit.tools.call("everything", "get-sum", {"a": 19, "b": 23})
    time = orbit.tools.call("time", "get_current_time", {"timezone": "UTC"})
    if echo.is_error or total.is_error or time.is_error:
        raise orbit.Error("internal", "a tool reported an error")
    # mcp-server-time answers with JSON in a text block.
    try:
        when: Any = json.loads(time.text(), parse_constant=_no_constants)
    except ValueError:
        when = time.text()
    return json.dumps(
        {"tools": names, "echo": echo.text(), "sum": total.text(), "time": when},
        separators=(",", ":"),
        ensure_ascii=False,
        sort_keys=True,
    )
