"""Bulk statements of one write transaction, cheap on SQLite.

A batch of webhooks or of messages is a dozen statements over hundreds of rows. Through
SQLAlchemy's execution machinery each row of an ``executemany`` costs several microseconds (a
parameter dict rebuilt per row) and each statement more. The write lane
(``chatforge.store.write_lane.DriverStatements``) runs the same Core statements, compiled by
SQLAlchemy once per statement (:func:`compiled_form`), straight on its ``sqlite3`` connection,
with values converted by the column types' own bind and result processors
(:func:`driver_values`, :func:`python_rows`) and inserts sent as a few multi-row statements
(:func:`multi_row`). On other databases the same statements go to SQLAlchemy unchanged, so one
definition serves both.

Statements must be built once (module constants, or factories cached per size, see
:func:`among`): they are the keys of the compiled cache. Rows of ``Statements.run`` name every
column they write (column defaults are not applied), and statements compiled here have no
``IN`` with an expanding parameter: :func:`among` pads lists to a few sizes instead.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Delete, Insert, Select, TextClause, Update, bindparam
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import TextualSelect

AnySelect = Select[*tuple[Any, ...]]
Statement = AnySelect | Insert | Update | Delete | TextClause | TextualSelect
Processor = Callable[[Any], Any]
_MISSING = object()
# Few sizes, so few statements to compile and cache; a batch's lists fit the largest.
_SIZES = (8, 32, 128, 512)
MAX_IN = _SIZES[-1]
"""The most values one ``among`` list takes."""


def among(
    column: ColumnElement[Any] | QueryableAttribute[Any], name: str, size: int
) -> ColumnElement[bool]:
    """``column IN (:name_0, ..., :name_<size-1>)``, to fill with :func:`padded`."""
    return column.in_([bindparam(f"{name}_{i}") for i in range(size)])


class unindexed(FunctionElement[Any]):  # lower case: it reads like the SQL functions
    """``column`` in a condition that SQLite must not look up through an index.

    Without statistics (chatforge does not run ``ANALYZE``) SQLite's planner prefers an index
    with more equality terms, so ``kind = ? AND status = ? AND owner_id IN (...)`` reads every
    conversation of that kind and status through ``(kind, status)`` instead of the few of those
    owners: a query that grows with the whole table. Written ``unindexed(kind) == ...`` the
    term is ``+kind = ?`` on SQLite, which no index serves, so the selective index is the one
    left; other databases, which keep statistics, get the column as it is.
    """

    inherit_cache = True

    def __init__(self, column: ColumnElement[Any] | QueryableAttribute[Any]) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(unindexed)
def _unindexed(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(element.clauses, **kw)


def padded(name: str, values: Collection[Any]) -> tuple[int, dict[str, Any]]:
    """The size of the ``among`` list that takes ``values``, and its parameters (the last
    value repeated to fill it, which changes nothing in an ``IN``)."""
    items = list(values)
    if not items:
        raise ValueError("an empty IN list matches nothing: skip the query")
    size = next((s for s in _SIZES if s >= len(items)), None)
    if size is None:
        raise ValueError(f"more than {_SIZES[-1]} values in one IN list")
    items += [items[-1]] * (size - len(items))
    return size, {f"{name}_{i}": value for i, value in enumerate(items)}


@dataclass(frozen=True, slots=True)
class Compiled:
    sql: str
    # Each positional parameter: its name, its value if the statement fixes it, its processor.
    binds: tuple[tuple[str, Any, Processor | None], ...]
    results: tuple[Processor | None, ...]


# Compiled forms by statement (and the columns an insert or update names). The statement is
# kept with its compiled form, so its id is never reused for another while cached.
_compiled: dict[tuple[int, tuple[str, ...]], tuple[Statement, Compiled]] = {}
# A bound on the cache: statements built per call instead of once would otherwise pile up here.
_MAX_COMPILED = 1024


def compiled_form(statement: Statement, keys: tuple[str, ...], dialect: Dialect) -> Compiled:
    cached = _compiled.get((id(statement), keys))
    if cached is not None:
        return cached[1]
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) or None)
    if "POSTCOMPILE" in compiled.string:
        raise ValueError("an IN with a list parameter: build it with among() instead")
    binds = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        # A value the statement itself carries (``kind == 'bot'``) unless the caller gives it.
        fixed = _MISSING if name in keys or bind.value is None else bind.effective_value
        binds.append((name, fixed, bind.type.dialect_impl(dialect).bind_processor(dialect)))
    results: tuple[Processor | None, ...] = ()
    if isinstance(statement, Select | Insert | Update | Delete):
        # A select's columns, or what DML returns (none without RETURNING).
        returned = (
            statement.selected_columns
            if isinstance(statement, Select)
            else statement.exported_columns
        )
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in returned
        )
    entry = Compiled(compiled.string, tuple(binds), results)
    if len(_compiled) >= _MAX_COMPILED:
        _compiled.clear()
    _compiled[(id(statement), keys)] = (statement, entry)
    return entry


# Rows per multi-row INSERT, largest first: a few statement shapes (each prepared once) cover
# every batch, and 64 rows of even a wide table stay under SQLite's oldest parameter limit (999).
_CHUNK_SIZES = (64, 16, 4, 1)


def multi_row(sql: str, values: Sequence[tuple[Any, ...]]) -> list[tuple[str, list[Any]]] | None:
    """The rows ``values`` of the single-row insert ``sql`` as a few multi-row ``VALUES``
    statements and their parameters; None for one row, or when ``sql`` is not a plain insert.

    One step of SQLite per statement instead of one per row (``executemany`` resets, binds and
    releases the GIL for each): about 2.5 times cheaper per row. Chunks of 64, 16, 4 and 1 rows
    keep the statement shapes few.
    """
    head, group = _values_clause(sql)
    if not group or len(values) < 2:
        return None
    statements = []
    start = 0
    for size in _CHUNK_SIZES:
        while len(values) - start >= size:
            chunk = values[start : start + size]
            start += size
            statements.append(
                (_multi_row_sql(head, group, size), [v for row in chunk for v in row])
            )
    return statements


@functools.lru_cache(maxsize=256)
def _values_clause(sql: str) -> tuple[str, str]:
    """``INSERT ... VALUES`` and its one ``(?, ...)`` group, or ``("", "")`` when ``sql`` is
    not a plain single-row insert (an update, or an insert with more after its values)."""
    head, marker, group = sql.rpartition(" VALUES ")
    if not marker or not sql.startswith("INSERT") or not group.startswith("(") or ")" in group[:-1]:
        return "", ""
    return head + marker, group


@functools.lru_cache(maxsize=256)
def _multi_row_sql(head: str, group: str, rows: int) -> str:
    return head + ", ".join([group] * rows)


def python_rows(compiled: Compiled, found: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """The driver's rows of ``compiled`` as SQLAlchemy would return them (aware datetimes,
    JSON, enums, booleans), through the columns' result processors."""
    processors = compiled.results
    if not any(processors):
        return [tuple(row) for row in found]
    return [
        tuple(p(v) if p is not None else v for p, v in zip(processors, row, strict=True))
        for row in found
    ]


class _Remembering:
    """A bind processor that remembers its last value, for the rows of one statement: they share
    many (one ``now`` for every timestamp, one bot name), and formatting a datetime for SQLite is
    a measurable part of a row's cost."""

    __slots__ = ("_last", "_process", "_result")

    def __init__(self, process: Processor) -> None:
        self._process = process
        self._last: Any = _MISSING
        self._result: Any = None

    def __call__(self, value: Any) -> Any:
        if value is not self._last:
            self._result = self._process(value)
            self._last = value
        return self._result


def driver_values(compiled: Compiled, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """The driver's parameters of each row: values converted as SQLAlchemy would (a ``KeyError``
    names a column a row left out: defaults are not applied here)."""
    binds = compiled.binds
    if binds and all(fixed is _MISSING for _, fixed, _ in binds):
        # Every value comes from the rows (inserts, mostly): one C call picks a row's values,
        # and only the few columns with a processor are converted in Python.
        pick = operator.itemgetter(*(name for name, _, _ in binds))
        picked = [(pick(row),) for row in rows] if len(binds) == 1 else [pick(row) for row in rows]
        convert = [
            (index, _Remembering(process))
            for index, (_, _, process) in enumerate(binds)
            if process is not None
        ]
        if not convert:
            return picked
        converted = []
        for values in picked:
            row_values = list(values)
            for index, processor in convert:
                row_values[index] = processor(row_values[index])
            converted.append(tuple(row_values))
        return converted
    remembering = [
        (name, fixed, _Remembering(process) if process is not None else None)
        for name, fixed, process in binds
    ]
    converted = []
    for row in rows:
        values = []
        for name, fixed, process in remembering:
            value = row[name] if fixed is _MISSING else fixed
            values.append(value if process is None else process(value))
        converted.append(tuple(values))
    return converted
