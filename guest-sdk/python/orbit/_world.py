"""The component's export: ``WitWorld.run`` calls the ``@orbit.agent``
function.

componentize-py builds a module that defines ``WitWorld``; the build shim
(``orbit_app.py``) imports the agent's module, whose ``@orbit.agent``
registers its function, then this class::

    import agent  # noqa: F401  (registers the @orbit.agent function)
    from orbit._world import WitWorld  # noqa: F401

This module imports the generated bindings (``wit_world``), so it is
imported only inside a component build.
"""

from __future__ import annotations

import os
from typing import Any, List

import componentize_py_types  # type: ignore[import-not-found, unused-ignore]
import wit_world  # type: ignore[import-not-found, unused-ignore]
from wit_world.imports import types as _types  # type: ignore[import-not-found, unused-ignore]

from . import _agent, _bindings
from ._errors import Error, ErrorCode

_Err: Any = componentize_py_types.Err

__all__ = ["WitWorld"]


def _wit_error(code: ErrorCode, message: str) -> Any:
    return _bindings.error_to_wit(Error(code, message))


def _log_traceback(e: BaseException) -> None:
    """Log ``e`` and its traceback at ``error`` level: file names (no
    directories), line numbers and functions, without reading any source
    file (that needs WASI filesystem calls, which ``--stub-wasi`` removes)."""
    lines: List[str] = [f"unhandled {type(e).__name__}: {e}", "Traceback (most recent call last):"]
    tb = e.__traceback__
    # The first frame is WitWorld.run itself.
    tb = tb.tb_next if tb is not None else None
    while tb is not None:
        code = tb.tb_frame.f_code
        lines.append(f'  File "{os.path.basename(code.co_filename)}", line {tb.tb_lineno}, in {code.co_name}')
        tb = tb.tb_next
    try:
        wit_log = _bindings.interface("log")
        wit_log.log(wit_log.Level.ERROR, "\n".join(lines))
    except Exception:
        pass


class WitWorld(wit_world.WitWorld):  # type: ignore[misc, unused-ignore]
    """The ``agent`` world's export, for componentize-py."""

    def run(self, input: str) -> str:
        """Call the ``@orbit.agent`` function with ``input``.

        :class:`orbit.Error` becomes the WIT ``err`` with its code and
        message; ``MemoryError`` traps (the run ends as ``memory-limit``);
        any other exception becomes ``internal`` (with its type name only;
        its traceback goes to the run's log).
        """
        fn = _agent.registered()
        if fn is None:
            raise _Err(_wit_error("internal", "no function is registered with @orbit.agent"))
        try:
            output = fn(input)
        except Error as e:
            raise _Err(_bindings.error_to_wit(e)) from None
        except _Err as e:
            # A WIT error from the raw bindings passes through as it is.
            if isinstance(e.value, _types.Error):
                raise
            raise _Err(_wit_error("internal", "the agent raised an unexpected result error")) from None
        except MemoryError:
            # The run's memory limit refused a grow: end the run the way a
            # Rust guest's failed allocation does (a trap the engine reports
            # as `memory-limit`), not as an error the agent chose.
            raise
        except (Exception, SystemExit) as e:
            _log_traceback(e)
            raise _Err(_wit_error("internal", f"the agent raised {type(e).__name__}")) from None
        if not isinstance(output, str):
            raise _Err(_wit_error("internal", f"the agent returned {type(output).__name__}, not str"))
        return output
