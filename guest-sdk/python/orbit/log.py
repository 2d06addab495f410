"""Log lines kept on the run record (the WIT ``log`` interface).

Lines beyond the run's log-size limit are dropped and the record notes the
truncation. Logging never raises::

    orbit.log.info(f"stored {n} bytes")
    orbit.log.log("warn", "retrying")
"""

from __future__ import annotations

from typing import Dict, Literal, Tuple

from . import _bindings

__all__ = ["Level", "LEVELS", "log", "trace", "debug", "info", "warn", "warning", "error"]

Level = Literal["trace", "debug", "info", "warn", "error"]
"""Severity of a log line (the WIT ``level`` enum)."""

LEVELS: Tuple[Level, ...] = ("trace", "debug", "info", "warn", "error")
"""Every level, from the least to the most severe."""

_WIT_NAMES: Dict[str, str] = {
    "trace": "TRACE",
    "debug": "DEBUG",
    "info": "INFO",
    "warn": "WARN",
    "warning": "WARN",
    "error": "ERROR",
}


def log(level: Level, message: str) -> None:
    """Append ``message`` to the run's log at ``level`` (``"trace"``,
    ``"debug"``, ``"info"``, ``"warn"`` or ``"error"``).

    Raises:
        ValueError: ``level`` is not one of these.
    """
    name = _WIT_NAMES.get(level) if isinstance(level, str) else None
    if name is None:
        raise ValueError(f"unknown log level {level!r}: expected one of {', '.join(LEVELS)}")
    wit = _bindings.interface("log")
    wit.log(wit.Level[name], message if isinstance(message, str) else str(message))


def trace(message: str) -> None:
    """Append a ``trace`` line."""
    log("trace", message)


def debug(message: str) -> None:
    """Append a ``debug`` line."""
    log("debug", message)


def info(message: str) -> None:
    """Append an ``info`` line."""
    log("info", message)


def warn(message: str) -> None:
    """Append a ``warn`` line."""
    log("warn", message)


def warning(message: str) -> None:
    """Append a ``warn`` line (an alias of :func:`warn`, as in :mod:`logging`)."""
    log("warn", message)


def error(message: str) -> None:
    """Append an ``error`` line."""
    log("error", message)
