"""Python SDK for Orbit guests.

Orbit runs WebAssembly components; this package wraps the
``orbit:runtime@0.1.0`` WIT package (``wit/`` at the root of the Orbit
repository) in a Python API, over the bindings that componentize-py
generates when it builds the component:

* :mod:`orbit.storage`: blob storage private to the run's workspace;
* :mod:`orbit.cache`: a key-value cache with time-to-live and counters;
* :mod:`orbit.log`: log lines kept on the run record;
* :mod:`orbit.db`: SQL tables (SQLite) private to the run's workspace;
* :mod:`orbit.fetch`: outbound HTTP through the host, with secrets
  injected by name (the guest never holds their values);
* :mod:`orbit.ai`: model calls through the workspace's providers;
* :mod:`orbit.jobs`: stored jobs, run as child runs or queued;
* :mod:`orbit.tools`: MCP tools of the workspace's MCP servers;
* :class:`Error`: the error every primitive raises, which an agent raises
  too to fail its run with a given code;
* :func:`agent`: registers the function the component's ``run`` calls.

An agent::

    import orbit

    @orbit.agent
    def run(input: str) -> str:
        n = orbit.cache.increment("calls", 1)
        orbit.log.info(f"call {n}")
        if not input:
            raise orbit.Error("invalid-input", "empty input")
        return input.upper()

``orbit run agent.py --input hello`` builds and runs it (see
``guest-sdk/python/README.md``).
"""

from . import ai, cache, db, fetch, jobs, log, storage, tools
from ._agent import RunFunction, agent
from ._errors import ERROR_CODES, Error, ErrorCode

__version__ = "0.1.0"

__all__ = [
    "agent",
    "Error",
    "ErrorCode",
    "ERROR_CODES",
    "RunFunction",
    "ai",
    "cache",
    "db",
    "fetch",
    "jobs",
    "log",
    "storage",
    "tools",
]
