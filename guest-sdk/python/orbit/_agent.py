"""``@orbit.agent``: registers the function a component's ``run`` calls."""

from __future__ import annotations

from typing import Callable, Optional, TypeVar

RunFunction = Callable[[str], str]
"""The shape of an agent: input text in, output text out."""

F = TypeVar("F", bound=RunFunction)

_registered: Optional[RunFunction] = None


def agent(fn: F) -> F:
    """Register ``fn`` as the agent: the component's exported ``run`` calls
    it with the run's input and returns what it returns.

    ``fn`` takes the input ``str`` and returns the output ``str``. To make
    the run fail with a given code, raise :class:`orbit.Error`; any other
    exception fails the run with code ``internal`` (its traceback goes to the
    run's log). The function is returned unchanged, so it can still be
    called directly, e.g. from a unit test::

        import orbit

        @orbit.agent
        def run(input: str) -> str:
            return input.upper()

    Only one function per component may be registered.

    Raises:
        TypeError: ``fn`` is not callable.
        RuntimeError: another function is already registered.
    """
    global _registered
    if not callable(fn):
        raise TypeError(f"@orbit.agent needs a function, not {type(fn).__name__}")
    previous = _registered
    if previous is not None and previous is not fn and _name(previous) != _name(fn):
        raise RuntimeError(
            f"@orbit.agent: {_name(previous)} is already the agent; a component has one agent function, "
            f"so {_name(fn)} cannot be registered too"
        )
    _registered = fn
    return fn


def registered() -> Optional[RunFunction]:
    """The function registered with :func:`agent`, or ``None``."""
    return _registered


def _name(fn: object) -> str:
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{name}"
