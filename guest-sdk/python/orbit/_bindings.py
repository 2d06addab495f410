"""Access to the bindings componentize-py generates at build time.

Not part of the public API. The bindings (``wit_world`` and
``componentize_py_types``) exist only inside a component build, so they are
imported with :func:`importlib.import_module` and typed ``Any``: the SDK
imports and type-checks without them. In a build they are imported while
componentize-py pre-initializes the component, so a run does not pay for it.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, NoReturn, Optional

from ._errors import Error

_INTERFACES = ("types", "storage", "cache", "log", "fetch", "db", "ai", "jobs", "tools")


def _load(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_types_module: Any = _load("componentize_py_types")
Err: Any = getattr(_types_module, "Err", None)
"""``componentize_py_types.Err``, or ``None`` outside a component build."""

MODULES: Dict[str, Any] = {}
"""The loaded ``wit_world.imports.<interface>`` modules, by interface name."""
for _name in _INTERFACES:
    _module = _load("wit_world.imports." + _name)
    if _module is not None:
        MODULES[_name] = _module

NO_BINDINGS = (
    "the orbit:runtime bindings are not available: orbit's host calls work only inside a component "
    "built with componentize-py against the `agent` world"
)


def interface(name: str) -> Any:
    """The bindings module of the WIT interface ``name``.

    Raises:
        RuntimeError: outside a component build.
    """
    module = MODULES.get(name)
    if module is None:
        raise RuntimeError(NO_BINDINGS)
    return module


def error_from_wit(value: Any) -> Error:
    """An :class:`Error` from a WIT ``error`` record (``types.Error``)."""
    code: Any = getattr(getattr(value, "code", None), "name", "INTERNAL")
    message = getattr(value, "message", None)
    try:
        return Error(code, message if isinstance(message, str) else None)
    except ValueError:
        return Error("internal", message if isinstance(message, str) else None)


def error_to_wit(error: Error) -> Any:
    """The WIT ``error`` record (``types.Error``) for ``error``."""
    types = interface("types")
    return types.Error(code=types.ErrorCode[error.code.upper().replace("-", "_")], message=error.message)


def call(iface: str, func: str, *args: Any) -> Any:
    """Call ``func`` of the WIT interface ``iface`` with ``args``; a WIT
    ``err`` is raised as :class:`Error`."""
    target = getattr(interface(iface), func)
    try:
        return target(*args)
    except Exception as e:
        if Err is not None and isinstance(e, Err):
            raise error_from_wit(e.value) from None
        raise


def raise_invalid(message: str) -> NoReturn:
    raise Error("invalid-input", message)


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an ``int`` within ``[lo, hi]``.

    Raises:
        TypeError: ``value`` is not an ``int``.
        Error: ``invalid-input`` when it is out of range.
    """
    if not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise_invalid(f"{name} is out of range ({lo} to {hi})")
    return int(value)


U16_MAX = 2**16 - 1
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
S64_MIN = -(2**63)
S64_MAX = 2**63 - 1


def u32(name: str, value: Any) -> int:
    return check_int(name, value, 0, U32_MAX)


def u64(name: str, value: Any) -> int:
    return check_int(name, value, 0, U64_MAX)


def s64(name: str, value: Any) -> int:
    return check_int(name, value, S64_MIN, S64_MAX)


def opt_u32(name: str, value: Any) -> Optional[int]:
    return None if value is None else u32(name, value)


def opt_u64(name: str, value: Any) -> Optional[int]:
    return None if value is None else u64(name, value)


def text(name: str, value: Any) -> str:
    """``value`` if it is a ``str``; else ``TypeError``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")
    return value


def opt_text(name: str, value: Any) -> Optional[str]:
    return None if value is None else text(name, value)


def blob(name: str, value: Any, hint: str = "") -> bytes:
    """``value`` (``bytes``, ``bytearray`` or ``memoryview``) as ``bytes``."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    extra = f"; {hint}" if hint and isinstance(value, str) else ""
    raise TypeError(f"{name} must be bytes, not {type(value).__name__}{extra}")


def decode(data: bytes, what: str, encoding: str = "utf-8") -> str:
    """``data`` decoded; ``invalid-input`` when it does not decode."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise Error("invalid-input", f"{what} is not valid {encoding}") from None
