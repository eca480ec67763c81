"""Writes that wait for the next round trip: a request's INSERTs sent as one statement.

On PostgreSQL every statement is a round trip to the server, and most of a request's writes
need no answer back: a posting's entries, the transaction row, its audit event, the request
log. :meth:`host.ledger.prepared.Prepared.later` queues such an INSERT on the connection
instead of sending it, and :func:`flush` sends everything queued as **one** statement: a
data-modifying ``WITH`` whose parts are the queued INSERTs (rows queued one after the other
for the same statement become one multi-row ``VALUES``, so they keep their order).

The queue is flushed before anything else reaches the server on that connection, so nothing
ever reads past a queued write:

* before each statement of :class:`~host.ledger.prepared.Prepared` and
  :func:`~host.ledger.prepared.run_plain`;
* before each statement SQLAlchemy executes (a ``before_execute`` listener);
* by the storage port at the end of each request (its savepoint, or its transaction), so an
  error of a queued write is raised inside the request that made it, which is rolled back
  alone and retried or answered 96 exactly as if the statement had failed where it was made;
* before the COMMIT (a ``commit`` listener, first in line): no commit leaves a queued write
  behind, whoever opened the transaction.

A posting's chain head can wait too (:func:`guard`): the head's conditional UPDATE and the
group's INSERT lead the statement, every queued INSERT in it writes only when the group was
written, and the statement returns whether it was. When another writer or a rolled-back
savepoint moved the head meanwhile, nothing of the statement is written and the flush raises
:class:`~host.ledger.db_retry.RetryTransaction`: the request runs again from its first read
(the ledger then reads the head under lock). Only code that is run again on that error may
queue a guard: the storage port's requests, marked by :func:`retried`.

A ``rollback`` (or SQLAlchemy's rollback to a savepoint) drops what is queued: it would have
been undone. Within one statement PostgreSQL runs the parts in no set order, so a write to a
table that already has a queued write of another shape is not merged: the queue is flushed
first, and the two reach the table in the order they were made.

SQLite is untouched: its driver runs a statement per call, and a call costs no round trip,
so ``later`` there runs the statement at once, as ``run`` does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from weakref import WeakSet

from sqlalchemy import Connection, Engine, event, exc

from host.ledger.db_retry import RetryTransaction

_KEY = "poslab_pending_writes"  # Connection.info: the queue of the current transaction
_RETRIED = "poslab_pending_retried"  # Connection.info: >0 while a retried block runs
_MAX_ROWS = 64  # a longer queue is sent first: PostgreSQL takes at most 65,535 parameters
_HEAD = re.compile(r"^(INSERT INTO (\S+) \([^()%]*\) VALUES )(\([^;]*\))$", re.S)
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_LISTENING: WeakSet[Engine] = WeakSet()


class WriteForm:
    """A single-row ``INSERT ... VALUES (...)`` in psycopg's named style, ready to be merged.

    :ivar table: the table it writes (rows for one table are never reordered).
    :ivar head: ``INSERT INTO t (cols) VALUES `` and ``row`` the ``(%(a)s, ...)`` part.
    :ivar names: the row's parameter names, in the order values are given.
    """

    __slots__ = ("table", "head", "row", "names", "columns")

    def __init__(self, table: str, head: str, row: str, names: tuple[str, ...]) -> None:
        self.table = table
        self.head = head
        self.row = row
        self.names = names
        self.columns = head.removesuffix("VALUES ")
        """``INSERT INTO t (cols) ``: the same rows from a ``SELECT`` after a guard."""

    @classmethod
    def of(cls, sql: str, names: tuple[str, ...]) -> WriteForm | None:
        """The form of the compiled ``sql`` taking ``names``, or None when it is not a plain
        single-row INSERT whose only ``%`` are its placeholders (then it runs at once)."""
        match = _HEAD.match(sql)
        if match is None:
            return None
        row = match.group(3)
        used = _PLACEHOLDER.findall(row)
        if row.count("%") != len(used) or set(used) != set(names):
            return None
        return cls(match.group(2), match.group(1), row, names)


class Guard:
    """Statements that lead a flush and must write their one row for the rest to count.

    :ivar ctes: ``a AS (...), b AS (...)``, the last one ``RETURNING`` the row; ``name``
        that last one's name.
    :ivar params: their parameters (named apart from the writes' ``w<j>r<i>_`` ones).
    :ivar on_miss: called when they wrote nothing or the statement failed.
    """

    __slots__ = ("ctes", "name", "params", "on_miss")

    def __init__(self, ctes: str, name: str, params: dict[str, Any],
                 on_miss: Callable[[], None]) -> None:
        self.ctes = ctes
        self.name = name
        self.params = params
        self.on_miss = on_miss


class _Queue:
    """The writes one transaction has queued: ``[form, [values, ...]]`` in order, and the
    guard that leads them, if any."""

    __slots__ = ("txn", "items", "rows", "guard")

    def __init__(self, txn: Any) -> None:
        self.txn = txn
        self.items: list[tuple[WriteForm, list[Sequence[Any]]]] = []
        self.rows = 0
        self.guard: Guard | None = None


def _current(conn: Connection) -> _Queue:
    """The queue of ``conn``'s transaction (a new one, listeners installed, if none)."""
    info = conn.info
    pending: _Queue | None = info.get(_KEY)
    txn = conn.get_transaction()
    if pending is None or pending.txn is not txn:
        if conn.engine not in _LISTENING:
            _listen(conn.engine)
        pending = info[_KEY] = _Queue(txn)
    return pending


@contextmanager
def retried(conn: Connection) -> Iterator[None]:
    """Mark the block as run again on :class:`RetryTransaction` (it may queue a guard)."""
    info = conn.info
    info[_RETRIED] = info.get(_RETRIED, 0) + 1
    try:
        yield
    finally:
        info[_RETRIED] -= 1


def may_guard(conn: Connection) -> bool:
    """Whether a guard may be queued on ``conn`` now (inside :func:`retried`, psycopg)."""
    return bool(conn.info.get(_RETRIED)) and conn.dialect.driver == "psycopg"


def guard(conn: Connection, lead: Guard) -> None:
    """Queue ``lead`` to open the next flush (see the module doc); a guard already queued is
    sent first (one guard per statement)."""
    pending = _current(conn)
    if pending.guard is not None:
        flush(conn)
        pending = _current(conn)
    pending.guard = lead


def queue(conn: Connection, form: WriteForm, rows: Sequence[Sequence[Any]]) -> None:
    """Queue ``rows`` (values in ``form.names`` order) to be inserted at the next flush."""
    pending = _current(conn)
    items = pending.items
    if items:
        last_form, last_rows = items[-1]
        if last_form is form and pending.rows + len(rows) <= _MAX_ROWS:
            last_rows.extend(rows)  # one multi-row VALUES: the rows keep their order
            pending.rows += len(rows)
            return
        if pending.rows + len(rows) > _MAX_ROWS or any(f.table == form.table for f, _ in items):
            flush(conn)
            pending = _current(conn)
            items = pending.items
    items.append((form, list(rows)))
    pending.rows += len(rows)


def flush(conn: Connection) -> None:
    """Send what ``conn``'s transaction has queued, as one statement (nothing queued: no-op).

    A database error is raised as SQLAlchemy's class for it (``IntegrityError`` ...), as the
    queued statements would have raised it, and a guard that wrote nothing as
    :class:`RetryTransaction`; the queue is empty afterwards either way."""
    pending: _Queue | None = conn.info.pop(_KEY, None)
    if pending is None or pending.txn is not conn.get_transaction():
        return  # nothing, or left by a transaction that ended (rolled back: undone anyway)
    lead = pending.guard
    if not pending.items and lead is None:
        return
    sql, names, order = _statement(None if lead is None else lead.ctes,
                                   None if lead is None else lead.name,
                                   tuple((form, len(rows)) for form, rows in pending.items))
    params: dict[str, Any] = {} if lead is None else dict(lead.params)
    slots = iter(names)
    for _form, rows in pending.items:
        for values in rows:
            params.update(zip(next(slots), values, strict=True))
    raw: Any = conn.connection.dbapi_connection
    from psycopg import RawCursor  # only psycopg queues: SQLite installs need no psycopg

    try:
        # Native placeholders ($1 ...) through a raw cursor: psycopg would parse a statement
        # this long (over 4 KB or 50 parameters) for its %(name)s ones on every call.
        cursor: Any = RawCursor(raw)
        cursor.execute(sql, [params[name] for name in order])
        written = True if lead is None else cursor.fetchone()[0] == 1
    except conn.dialect.loaded_dbapi.Error as err:
        if lead is not None:
            lead.on_miss()  # rolled back with the request: the head is not where it was
        raise wrapped(conn, sql, params, err) from err
    if not written:
        assert lead is not None
        lead.on_miss()
        raise RetryTransaction("the ledger's chain head moved under a posting; run again")


def discard(conn: Connection) -> None:
    """Drop what ``conn`` has queued (its savepoint or transaction is being rolled back)."""
    pending: _Queue | None = conn.info.pop(_KEY, None)
    if pending is not None and pending.guard is not None:
        pending.guard.on_miss()  # the head it counted on was never written


def queued(conn: Connection) -> bool:
    """Whether ``conn`` has writes waiting for a flush."""
    return _KEY in conn.info


def wrapped(conn: Connection, sql: str, args: Any, err: Exception) -> exc.StatementError:
    """``err`` of the driver as the SQLAlchemy exception ``execute`` would have raised."""
    return exc.DBAPIError.instance(sql, args, err, conn.dialect.loaded_dbapi.Error,
                                   dialect=conn.dialect)


_Statement = tuple[str, tuple[tuple[str, ...], ...], tuple[str, ...]]
_STATEMENTS: dict[tuple[str | None, tuple[tuple[WriteForm, int], ...]], _Statement] = {}
_MAX_STATEMENTS = 512  # shapes seen (a handful per message type); cleared past this


def _statement(lead: str | None, lead_name: str | None,
               shape: tuple[tuple[WriteForm, int], ...]) -> _Statement:
    """The SQL of one flush: the guard's statements ``lead`` (or None), then each form of
    ``shape`` with its row count; per row, its parameter names (``w<part>r<row>_<name>``,
    unique across the statement); and the names in the order of the SQL's ``$n``. Cached:
    the same text each time lets psycopg prepare it on the server. After a guard every
    INSERT writes only when the guard's row was written, and the statement returns that row
    count."""
    key = (lead, shape)
    known = _STATEMENTS.get(key)
    if known is not None:
        return known
    parts: list[str] = []
    names: list[tuple[str, ...]] = []
    for j, (form, count) in enumerate(shape):
        rows = []
        for i in range(count):
            prefix = f"w{j}r{i}_"
            rows.append(form.row.replace("%(", "%(" + prefix))
            names.append(tuple(prefix + n for n in form.names))
        if lead is None:
            parts.append(form.head + ", ".join(rows))
        else:  # a filter over VALUES keeps the rows' order
            parts.append(f"{form.columns}SELECT * FROM (VALUES {', '.join(rows)}) AS poslab_v "
                         f"WHERE EXISTS (SELECT FROM {lead_name})")
    ctes = [f"poslab_w{j} AS ({part})" for j, part in enumerate(parts)]
    if lead is not None:
        sql = f"WITH {', '.join([lead, *ctes])} SELECT count(*) FROM {lead_name}"
    elif len(parts) == 1:
        sql = parts[0]
    else:
        sql = f"WITH {', '.join(ctes[:-1])} {parts[-1]}"
    numbers: dict[str, int] = {}  # a name used twice (the guard's) is one parameter
    sql = _PLACEHOLDER.sub(
        lambda m: f"${numbers.setdefault(m.group(1), len(numbers) + 1)}", sql)
    if len(_STATEMENTS) >= _MAX_STATEMENTS:
        _STATEMENTS.clear()
    known = _STATEMENTS[key] = (sql, tuple(names), tuple(numbers))
    return known


def _listen(engine: Engine) -> None:
    """Flush before SQLAlchemy's statements and the COMMIT; drop on a rollback (module doc)."""
    event.listen(engine, "before_execute", _before_execute)
    event.listen(engine, "commit", flush, insert=True)  # before any other commit hook
    event.listen(engine, "rollback", discard)
    event.listen(engine, "rollback_savepoint", _rolled_back_to)
    _LISTENING.add(engine)


def _before_execute(conn: Connection, *_args: Any) -> None:
    if _KEY in conn.info:
        flush(conn)


def _rolled_back_to(conn: Connection, *_args: Any) -> None:
    discard(conn)
