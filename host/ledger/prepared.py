"""Prepared statements for the request path: a Core statement compiled once, run cheaply.

SQLAlchemy's ``Connection.execute`` costs about 20 µs of CPU per statement even when the
compiled form comes from its cache (execution context, parameter processing, result set-up,
event dispatch) -- more than SQLite's own work for the host's small statements, and the host
runs a dozen per sale (docs/performance.md). :class:`Prepared` keeps the statement written in
Core and compiled by SQLAlchemy for the connection's dialect, and on SQLite (sqlite3) and
PostgreSQL (psycopg 3) runs the compiled SQL on the connection's DBAPI connection inside the
transaction SQLAlchemy began. psycopg prepares a statement on the server after a few
executions of the same text, so on PostgreSQL the fast path is also a server-side prepared
statement. Everything else goes through ``Connection.execute`` unchanged, and so do those two
whenever the fast path could behave differently:

* no transaction begun on the connection (``execute`` would autobegin it);
* cursor event listeners on the engine (e.g. the ``before_commit`` crash point, counters),
  as they stood when the Connection object ran its first prepared statement;
* a statement needing result processing, or Python-side column defaults (the caller left a
  column out): checked once per compiled form.

Bind processing (e.g. ``DateTime`` or ``JSON`` columns on SQLite) is applied on the fast path
with the compiled form's own processors, as ``execute`` applies them. An INSERT compiled with
``RETURNING`` (PostgreSQL's way to hand back the new key) reads its key from that row.

Driver errors are raised as SQLAlchemy's own exception classes (``IntegrityError``,
``OperationalError`` ...), exactly as ``execute`` raises them, so callers' retry and error
handling see no difference. Results offer the subset of ``Result`` the host uses.

:meth:`Prepared.later` is for an INSERT whose outcome the caller does not need before its
request ends: on psycopg's fast path it waits on the connection and goes to the server with
the others in one statement (:mod:`host.ledger.pending`); anywhere else it runs at once.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, exc
from sqlalchemy.sql import Executable, Insert
from sqlalchemy.sql.compiler import SQLCompiler

from host.ledger import pending
from host.ledger.pending import WriteForm, wrapped

_Params = Mapping[str, Any]


class _Plan:
    """One compiled form: SQL text, the order of its positional parameters, the row type."""

    __slots__ = ("sql", "order", "named", "returning", "fixed", "row", "procs", "_pick", "form")

    def __init__(self, compiled: SQLCompiler, row: type | None,
                 procs: dict[str, Any], form: WriteForm | None = None) -> None:
        self.sql = compiled.string
        # SQLite's driver takes positional parameters (``?``), psycopg named ones
        # (``%(name)s``): the same values, in the compiled order or by name.
        self.named = compiled.positiontup is None
        self.order: tuple[str, ...] = tuple(
            dict.fromkeys(compiled.bind_names.values()) if self.named
            else compiled.positiontup or ())
        # An INSERT compiled with ``RETURNING id`` (PostgreSQL): the new key is a result row.
        self.returning = bool(getattr(compiled, "implicit_returning", None))
        # Literal values the statement carries itself (e.g. ``kind == "auth"``).
        self.fixed = {name: bind.effective_value for bind, name in compiled.bind_names.items()
                      if not bind.required}
        self.row = row
        # The dialect's bind processors with their positions (None: no type needs one).
        found = tuple((i, procs[k]) for i, k in enumerate(self.order) if k in procs)
        self.procs = found or None
        self._pick = _picker(self.order)
        self.form = form
        """The statement as a write that may wait (:mod:`host.ledger.pending`), or None."""

    def args(self, params: _Params) -> tuple[Any, ...] | dict[str, Any]:
        """The driver's parameters for ``params``: a tuple (positional) or a dict (named)."""
        values = self.values(params)
        return dict(zip(self.order, values, strict=True)) if self.named else values

    def values(self, params: _Params) -> tuple[Any, ...]:
        """The values of ``params`` in the statement's order, bind-processed."""
        # The caller's values win over the statement's own literals, as in ``execute``.
        values = self._pick({**self.fixed, **params} if self.fixed else params)
        if self.procs is not None:  # only the few columns that have one (e.g. a DateTime)
            processed = list(values)
            for i, f in self.procs:
                processed[i] = f(processed[i])
            values = tuple(processed)
        return values


def _picker(order: tuple[str, ...]) -> Callable[[_Params], tuple[Any, ...]]:
    """A function taking the values of ``order`` out of a mapping, as a tuple, in C."""
    if len(order) > 1:
        return cast(Callable[[_Params], tuple[Any, ...]], itemgetter(*order))
    if order:
        one = itemgetter(order[0])
        return lambda params: (one(params),)
    return lambda _params: ()


class Prepared:
    """A statement built once; :meth:`run` executes it on a connection with parameters."""

    __slots__ = ("stmt", "_plans", "_row")

    def __init__(self, stmt: Executable) -> None:
        self.stmt: Any = stmt
        # Per dialect (one process may hold SQLite and PostgreSQL engines), per parameter
        # names in the order the caller gives them.
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan | None] = {}
        names = list(getattr(stmt, "selected_columns", {}).keys()) if hasattr(
            stmt, "selected_columns") else []
        self._row = _row_type(names) if names else None

    def run(self, conn: Connection, params: _Params | None = None) -> CursorResult[Any]:
        """Execute with ``params``; returns ``first/one/scalar/scalar_one/all/scalars``,
        ``rowcount`` and ``inserted_primary_key`` like a SQLAlchemy result."""
        params = params or {}
        mode = _mode(conn)
        plan = self._plan(conn, params) if mode else None
        if plan is None:
            return conn.execute(self.stmt, dict(params))
        # Duck-typed: the subset of CursorResult the host's callers use. (The type is a
        # string: a subscripted generic is looked up in typing's cache on every call.)
        return cast("CursorResult[Any]", _Result(_execute(conn, plan, params, mode), plan.row,
                                                 plan.returning))

    def run_many(self, conn: Connection, rows: Sequence[_Params]) -> None:
        """Execute once per parameter set (one ``executemany``); all sets have the same keys."""
        mode = _mode(conn) if rows else _SLOW
        plan = self._plan(conn, rows[0]) if mode else None
        if plan is None:
            conn.execute(self.stmt, [dict(r) for r in rows])
            return
        if mode == _QUEUEING and pending.queued(conn):
            pending.flush(conn)
        args: Any = [plan.args(r) for r in rows]
        raw = conn.connection.dbapi_connection
        assert raw is not None
        try:
            if plan.named:  # psycopg: executemany is a cursor method (pipelined)
                cursor = raw.cursor()
                try:
                    cursor.executemany(plan.sql, args)
                finally:
                    cursor.close()
            else:
                raw.executemany(plan.sql, args)
        except conn.dialect.loaded_dbapi.Error as err:
            raise wrapped(conn, plan.sql, args, err) from err

    def later(self, conn: Connection, params: _Params) -> None:
        """Execute an INSERT whose outcome the request does not need before it ends: on
        psycopg's fast path queued for the next flush (:mod:`host.ledger.pending`, its error
        raised there), elsewhere at once."""
        mode = _mode(conn)
        plan = self._plan(conn, params) if mode else None
        if plan is None:
            conn.execute(self.stmt, dict(params))
        elif plan.form is None:  # planned once, and no result wrapped: nobody reads it
            _execute(conn, plan, params, mode)
        else:
            pending.queue(conn, plan.form, (plan.values(params),))

    def later_many(self, conn: Connection, rows: Sequence[_Params]) -> None:
        """:meth:`later` for several rows (all with the same keys), kept in their order."""
        plan = self._plan(conn, rows[0]) if rows and _mode(conn) else None
        if plan is None or plan.form is None:
            self.run_many(conn, rows)
            return
        pending.queue(conn, plan.form, [plan.values(r) for r in rows])

    def _plan(self, conn: Connection, params: _Params) -> _Plan | None:
        # Keyed by the parameter names in the caller's order: building a tuple costs a third
        # less than a frozenset, and each call site always passes its names in one order (a
        # new order only compiles the same plan once more).
        key = (conn.dialect.name, tuple(params))
        try:
            return self._plans[key]
        except KeyError:
            pass
        plan = self._compile(conn, frozenset(params))
        self._plans[key] = plan
        return plan

    def _compile(self, conn: Connection, keys: frozenset[str]) -> _Plan | None:
        dialect = conn.dialect
        compiled = cast(SQLCompiler, self.stmt.compile(dialect=dialect,
                                                       column_keys=sorted(keys)))
        if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch",
                                                                  None):
            return None  # a Python-side default to fill in: leave it to SQLAlchemy
        procs = {k: f for k, f in compiled._bind_processors.items() if f is not None}
        if any(not callable(f) for f in procs.values()):
            return None  # tuple types: leave them to SQLAlchemy
        for col in getattr(compiled, "_result_columns", ()):
            if dialect.type_descriptor(col[3]).result_processor(dialect, None) is not None:
                return None
        return _Plan(compiled, self._row, procs, self._form(conn, keys, compiled))

    def _form(self, conn: Connection, keys: frozenset[str],
              compiled: SQLCompiler) -> WriteForm | None:
        """psycopg: the INSERT without ``RETURNING`` (nobody reads the key of a write that
        waits), as a form the pending writes can merge; None for anything else."""
        if conn.dialect.driver != "psycopg" or not isinstance(self.stmt, Insert):
            return None
        plain = self.stmt.inline().compile(dialect=conn.dialect, column_keys=sorted(keys))
        names = tuple(dict.fromkeys(compiled.bind_names.values()))
        if plain.positiontup is not None or tuple(
                dict.fromkeys(plain.bind_names.values())) != names:
            return None  # the values would not line up with the row's placeholders
        return WriteForm.of(plain.string, names)


def _execute(conn: Connection, plan: _Plan, params: _Params, mode: int) -> Any:
    """Run ``plan`` on the DBAPI connection (the fast path: ``mode`` from :func:`_mode`);
    the driver's cursor."""
    if mode == _QUEUEING and pending.queued(conn):
        pending.flush(conn)  # the queued writes reach the server before this statement
    args = plan.args(params)
    # The try/except is written out here and in run_many/run_plain rather than shared
    # through a context manager: that costs ~1 µs per statement, 15 statements a request.
    raw = conn.connection.dbapi_connection
    assert raw is not None
    try:
        return raw.execute(plan.sql, args)
    except conn.dialect.loaded_dbapi.Error as err:
        raise wrapped(conn, plan.sql, args, err) from err


def run_plain(conn: Connection, *sql: str) -> None:
    """Run parameterless statements (``SAVEPOINT`` and the like) the cheapest safe way: on
    the DBAPI connection when :class:`Prepared` would take its fast path, else through
    ``exec_driver_sql`` (cursor listeners then see them, as they see every other statement).

    Several statements on psycopg's fast path go as one simple query: one round trip (never
    prepared: a prepared statement holds one command). Elsewhere they run one by one."""
    mode = _mode(conn)
    if not mode:
        for one in sql:
            conn.exec_driver_sql(one)
        return
    if mode == _QUEUEING and pending.queued(conn):
        pending.flush(conn)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    runs: tuple[str, ...] = sql
    options: dict[str, Any] = {}
    if len(sql) > 1 and mode == _QUEUEING:
        runs, options = ("; ".join(sql),), {"prepare": False}
    for one in runs:
        try:
            raw.execute(one, **options)
        except conn.dialect.loaded_dbapi.Error as err:
            raise wrapped(conn, one, (), err) from err


_FAST_ATTR = "_poslab_fast_path"
#: How statements run on a connection (:func:`_mode`): through ``Connection.execute``; on the
#: DBAPI connection (sqlite3: nothing ever waits to be sent); on the DBAPI connection, after
#: the writes waiting on it (psycopg 3, :mod:`host.ledger.pending`).
_SLOW, _DIRECT, _QUEUEING = 0, 1, 2
_FAST_DRIVERS = {"pysqlite": _DIRECT, "psycopg": _QUEUEING}


def fast_path(conn: Connection) -> bool:
    """Whether statements on ``conn`` now take the fast path (and may wait to be sent)."""
    return _mode(conn) != _SLOW


def _mode(conn: Connection) -> int:
    # Whether the dialect and the engine's cursor listeners allow the fast path is fixed for
    # a Connection object's life in practice (listeners are installed before traffic), and
    # asking the event dispatch costs more than the statement's own Python work: decide once
    # per Connection, remembered on it. Only "inside a transaction" is asked per call.
    mode = getattr(conn, _FAST_ATTR, None)
    if mode is None:
        dispatch = conn.dispatch
        mode = _SLOW
        if not dispatch.before_cursor_execute and not dispatch.after_cursor_execute:
            mode = _FAST_DRIVERS.get(conn.dialect.driver, _SLOW)
        setattr(conn, _FAST_ATTR, mode)
    return mode if mode and conn.in_transaction() else _SLOW


def _row_type(names: Iterable[str]) -> type:
    base = namedtuple("Row", list(names), rename=True)  # type: ignore[misc]

    class Row(base):
        """A result row: attributes by column name, indexes, and ``_mapping``."""

        __slots__ = ()

        @property
        def _mapping(self) -> dict[str, Any]:
            return self._asdict()

    return Row


class _Result:
    """The subset of a SQLAlchemy result the host uses, over a DBAPI cursor."""

    __slots__ = ("_cursor", "_row", "_returning")

    def __init__(self, cursor: Any, row: type | None, returning: bool = False) -> None:
        self._cursor = cursor
        self._row = row
        self._returning = returning

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    @property
    def inserted_primary_key(self) -> tuple[int]:
        if self._returning:  # PostgreSQL: the INSERT ... RETURNING row
            return (int(self._cursor.fetchone()[0]),)
        return (int(self._cursor.lastrowid),)

    def _make(self, raw: Sequence[Any]) -> Any:
        return self._row(*raw) if self._row is not None else tuple(raw)

    def first(self) -> Any:
        raw = self._cursor.fetchone()
        self._cursor.close()
        return None if raw is None else self._make(raw)

    def one(self) -> Any:
        rows = self._cursor.fetchall()
        if len(rows) != 1:
            raise exc.NoResultFound("no row") if not rows else exc.MultipleResultsFound(
                "more than one row")
        return self._make(rows[0])

    def one_or_none(self) -> Any:
        rows = self._cursor.fetchall()
        if len(rows) > 1:
            raise exc.MultipleResultsFound("more than one row")
        return self._make(rows[0]) if rows else None

    def scalar(self) -> Any:
        raw = self._cursor.fetchone()
        self._cursor.close()
        return None if raw is None else raw[0]

    def scalar_one(self) -> Any:
        return self.one()[0]

    def all(self) -> list[Any]:
        return [self._make(r) for r in self._cursor.fetchall()]

    def scalars(self) -> _Scalars:
        return _Scalars(self._cursor)


class _Scalars:
    __slots__ = ("_cursor",)

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def all(self) -> list[Any]:
        return [r[0] for r in self._cursor.fetchall()]
