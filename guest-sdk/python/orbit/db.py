"""SQL tables (SQLite), private to the run's workspace (the WIT ``db``
interface).

Each call runs exactly one statement. Parameters (``?``, ``?NNN``,
``:name``, ``@name``, ``$name``) are bound from ``params`` in order, never
interpolated into the SQL text. Values map to Python as in :mod:`sqlite3`:
``None`` is NULL, ``int`` INTEGER (``bool`` as 0 or 1), ``float`` REAL,
``str`` TEXT and ``bytes`` BLOB::

    orbit.db.execute("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)")
    orbit.db.execute("INSERT INTO notes (body) VALUES (?)", ["hello"])
    rows = orbit.db.query("SELECT id, body FROM notes WHERE id > ?", [0])
    for row in rows:
        print(row["id"], row["body"])
    total = orbit.db.query("SELECT count(*) FROM notes").scalar()
    orbit.db.batch([                      # one transaction, all or nothing
        ("UPDATE notes SET body = ? WHERE id = ?", ["hi", 1]),
        "DELETE FROM notes WHERE body IS NULL",
    ])

Errors raise :class:`orbit.Error`: ``invalid-input`` for SQL errors
(syntax, unknown table, constraint violation, wrong parameter count) or a
statement given to the wrong function; ``permission-denied`` for
``ATTACH``, ``load_extension``, temporary objects, views, triggers,
indexes, transaction statements (use :func:`batch`) and pragmas outside a
read-only allow-list; ``limit-exceeded`` past the host's time cap or the
workspace's database size cap; ``too-large`` for a result over the host's
row or byte caps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union, overload

from . import _bindings as _b

__all__ = ["Value", "Row", "Rows", "Statement", "execute", "query", "batch"]

Value = Union[None, int, float, str, bytes]
"""A SQLite value: ``None`` (NULL), ``int``, ``float``, ``str`` or ``bytes``."""

Param = Union[None, int, float, str, bytes, bytearray, memoryview]
"""A parameter: a :data:`Value` (``bool`` is stored as 0 or 1;
``bytearray`` and ``memoryview`` as blobs)."""


def _to_wit(wit: Any, value: Any) -> Any:
    if value is None:
        return wit.Value_Null()
    if isinstance(value, bool):
        return wit.Value_Integer(int(value))
    if isinstance(value, int):
        return wit.Value_Integer(_b.s64("an integer parameter", value))
    if isinstance(value, float):
        return wit.Value_Real(value)
    if isinstance(value, str):
        return wit.Value_Text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return wit.Value_Blob(bytes(value))
    raise TypeError(f"a SQL parameter must be None, int, float, str or bytes, not {type(value).__name__}")


def _from_wit(value: Any) -> Value:
    # Value_Null has no payload; every other case carries `.value`.
    return getattr(value, "value", None)


def _params(wit: Any, params: Sequence[Param]) -> List[Any]:
    if isinstance(params, (str, bytes)):
        raise TypeError("params must be a sequence of values, not a single str or bytes")
    return [_to_wit(wit, p) for p in params]


class Row(Sequence[Value]):
    """One row of :class:`Rows`: a sequence of values that can also be
    indexed by column name (ASCII case-insensitive, as in SQL), like
    :class:`sqlite3.Row`."""

    __slots__ = ("_columns", "_values")

    def __init__(self, columns: Sequence[str], values: Sequence[Value]) -> None:
        self._columns = columns
        self._values = values

    @overload
    def __getitem__(self, key: int) -> Value: ...

    @overload
    def __getitem__(self, key: str) -> Value: ...

    @overload
    def __getitem__(self, key: slice) -> Sequence[Value]: ...

    def __getitem__(self, key: Union[int, str, slice]) -> Union[Value, Sequence[Value]]:
        """The value at position ``key``, or of the column named ``key``.

        Raises:
            KeyError: no column is named ``key``.
        """
        if isinstance(key, str):
            i = _column_index(self._columns, key)
            if i is None:
                raise KeyError(key)
            return self._values[i]
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Value]:
        return iter(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Row):
            return list(self._values) == list(other._values) and list(self._columns) == list(other._columns)
        if isinstance(other, (list, tuple)):
            return list(self._values) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Row({self.as_dict()!r})"

    def get(self, name: str, default: Value = None) -> Value:
        """The value of the column ``name``, or ``default`` without one."""
        i = _column_index(self._columns, name)
        return default if i is None else self._values[i]

    def keys(self) -> List[str]:
        """The column names."""
        return list(self._columns)

    def as_dict(self) -> Dict[str, Value]:
        """The row as ``{column: value}`` (a later duplicate column name wins)."""
        return dict(zip(self._columns, self._values))

    def as_tuple(self) -> Tuple[Value, ...]:
        """The values as a tuple."""
        return tuple(self._values)


def _column_index(columns: Sequence[str], name: str) -> Optional[int]:
    for i, c in enumerate(columns):
        if c == name:
            return i
    wanted = name.lower()
    for i, c in enumerate(columns):
        if c.lower() == wanted:
            return i
    return None


@dataclass
class Rows:
    """The result of a query (the WIT ``rows`` record).

    Iterate it for :class:`Row` objects; ``len(rows)`` is the row count.
    """

    columns: List[str]
    """Column names, in result order."""
    rows: List[List[Value]]
    """The values, one list per row, one value per column."""

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Row]:
        columns = self.columns
        return (Row(columns, values) for values in self.rows)

    def __getitem__(self, index: int) -> Row:
        """The row at ``index``."""
        return Row(self.columns, self.rows[index])

    def __bool__(self) -> bool:
        return bool(self.rows)

    def column_index(self, name: str) -> Optional[int]:
        """The position of the column ``name`` (ASCII case-insensitive)."""
        return _column_index(self.columns, name)

    def scalar(self) -> Value:
        """The first column of the first row (``None`` without rows): handy
        for ``SELECT count(*)``."""
        if not self.rows or not self.rows[0]:
            return None
        return self.rows[0][0]

    def dicts(self) -> List[Dict[str, Value]]:
        """Every row as ``{column: value}``."""
        return [dict(zip(self.columns, values)) for values in self.rows]

    def tuples(self) -> List[Tuple[Value, ...]]:
        """Every row as a tuple."""
        return [tuple(values) for values in self.rows]


@dataclass
class Statement:
    """One statement of a :func:`batch`, with its parameters."""

    sql: str
    params: Sequence[Param] = field(default_factory=lambda: [])


StatementLike = Union[Statement, str, Tuple[str, Sequence[Param]]]
"""A :class:`Statement`, a SQL string without parameters, or ``(sql, params)``."""


def execute(sql: str, params: Sequence[Param] = ()) -> int:
    """Run one statement that returns no rows (``CREATE``, ``INSERT``,
    ``UPDATE``, ``DELETE`` ...) and return the number of rows it changed.

    Raises:
        orbit.Error: see the module documentation; ``invalid-input`` too
            for a statement that returns rows (including ``... RETURNING``,
            refused before it runs: use :func:`query`).
    """
    wit = _b.interface("db")
    return int(_b.call("db", "execute", _b.text("sql", sql), _params(wit, params)))


def query(sql: str, params: Sequence[Param] = ()) -> Rows:
    """Run one statement that returns rows (``SELECT``, ``... RETURNING``, a
    read-only pragma such as ``table_info``) and return them.

    Raises:
        orbit.Error: see the module documentation.
    """
    wit = _b.interface("db")
    rows = _b.call("db", "query", _b.text("sql", sql), _params(wit, params))
    return Rows(columns=list(rows.columns), rows=[[_from_wit(v) for v in row] for row in rows.rows])


def batch(statements: Sequence[StatementLike]) -> List[int]:
    """Run ``statements`` in one transaction, all or nothing: on the first
    error every change of the batch is rolled back and that error raised.
    Returns the rows each statement changed. Statements may not return rows.

    Each statement is a :class:`Statement`, a SQL string, or a
    ``(sql, params)`` tuple.

    Raises:
        orbit.Error: as :func:`execute`; ``too-large`` for more statements
            than the host allows in one batch.
    """
    wit = _b.interface("db")
    if isinstance(statements, str):
        raise TypeError("batch takes a sequence of statements, not one str")
    wire = []
    for st in statements:
        if isinstance(st, Statement):
            sql, params = st.sql, st.params
        elif isinstance(st, str):
            sql, params = st, ()
        else:
            sql, params = st
        wire.append(wit.Statement(sql=_b.text("sql", sql), params=_params(wit, params)))
    return [int(n) for n in _b.call("db", "batch", wire)]
