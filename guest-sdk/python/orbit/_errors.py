"""The error every Orbit primitive raises: :class:`Error`."""

from __future__ import annotations

from typing import Dict, Literal, Optional, Tuple

ErrorCode = Literal[
    "not-found",
    "invalid-input",
    "too-large",
    "limit-exceeded",
    "permission-denied",
    "unavailable",
    "internal",
]
"""The WIT ``error-code`` names, in kebab-case, as :attr:`Error.code` holds them."""

ERROR_CODES: Tuple[ErrorCode, ...] = (
    "not-found",
    "invalid-input",
    "too-large",
    "limit-exceeded",
    "permission-denied",
    "unavailable",
    "internal",
)
"""Every error code, in WIT declaration order."""

_DESCRIPTIONS: Dict[str, str] = {
    "not-found": "not found",
    "invalid-input": "invalid input",
    "too-large": "too large",
    "limit-exceeded": "limit exceeded",
    "permission-denied": "permission denied",
    "unavailable": "unavailable",
    "internal": "internal error",
}


def _normalize(code: str) -> Optional[ErrorCode]:
    """``code`` as a known kebab-case code (``NOT_FOUND`` and ``not_found``
    are accepted too), or ``None``."""
    if not isinstance(code, str):
        return None
    name = code.strip().lower().replace("_", "-")
    for known in ERROR_CODES:
        if known == name:
            return known
    return None


class Error(Exception):
    """The error of every Orbit primitive (the WIT ``error`` record).

    Every host call that fails raises it; an agent raises it too to make its
    run fail with a given code::

        raise orbit.Error("invalid-input", "empty input")

    Attributes:
        code: What went wrong, as the WIT ``error-code`` name in kebab-case:
            ``"not-found"``, ``"invalid-input"``, ``"too-large"``,
            ``"limit-exceeded"``, ``"permission-denied"``,
            ``"unavailable"`` or ``"internal"``.
        message: A short human-readable description. The host's messages
            never carry host paths, OS errors, addresses or secrets.

    ``str(error)`` is ``"<code>: <message>"``, e.g. ``"not-found: not found"``.
    """

    code: ErrorCode
    message: str

    def __init__(self, code: ErrorCode, message: Optional[str] = None) -> None:
        """An error with ``code`` (one of :data:`ERROR_CODES`) and
        ``message`` (by default a generic description of the code).

        Raises:
            ValueError: ``code`` is not a WIT error code.
        """
        known = _normalize(code)
        if known is None:
            raise ValueError(f"unknown orbit error code {code!r}: expected one of {', '.join(ERROR_CODES)}")
        text = _DESCRIPTIONS[known] if message is None else str(message)
        super().__init__(known, text)
        self.code = known
        self.message = text

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"orbit.Error({self.code!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Error):
            return NotImplemented
        return (self.code, self.message) == (other.code, other.message)

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    @classmethod
    def not_found(cls, message: Optional[str] = None) -> "Error":
        """A ``not-found`` error."""
        return cls("not-found", message)

    @classmethod
    def invalid_input(cls, message: Optional[str] = None) -> "Error":
        """An ``invalid-input`` error."""
        return cls("invalid-input", message)

    @classmethod
    def too_large(cls, message: Optional[str] = None) -> "Error":
        """A ``too-large`` error."""
        return cls("too-large", message)

    @classmethod
    def limit_exceeded(cls, message: Optional[str] = None) -> "Error":
        """A ``limit-exceeded`` error."""
        return cls("limit-exceeded", message)

    @classmethod
    def permission_denied(cls, message: Optional[str] = None) -> "Error":
        """A ``permission-denied`` error."""
        return cls("permission-denied", message)

    @classmethod
    def unavailable(cls, message: Optional[str] = None) -> "Error":
        """An ``unavailable`` error."""
        return cls("unavailable", message)

    @classmethod
    def internal(cls, message: Optional[str] = None) -> "Error":
        """An ``internal`` error."""
        return cls("internal", message)
