"""Inserting and updating many rows at once (and learning new rows' ids), fast on
both databases.

The ids are chosen before the insert, so that one `executemany` of a single
statement inserts every row (SQLAlchemy would otherwise build one statement per row
on SQLite, which cannot return ids in row order, and on PostgreSQL a statement with
thousands of placeholders that the driver parses anew for every batch):

- SQLite: a write transaction holds the database's only write lock from its first
  statement (`BEGIN IMMEDIATE`, see db.py), so the ids after the largest one the
  table has had are free: its rows' largest, or for an AUTOINCREMENT table the
  largest ever (`sqlite_sequence`), as SQLite itself would pick.
- PostgreSQL: the ids are drawn from the table's sequence in one query, sorted so
  that rows keep their order (events are matched in the order of their ids).

The rows also skip SQLAlchemy's per-row parameter handling, which costs more than
the statement itself at a thousand rows: each column's own bind processor (the same
function SQLAlchemy would call) is applied in one tight loop, and the instants every
row of a batch shares (`now`) are converted once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sluice.store.schema import UTCDateTime

_Processor = Callable[[Any], Any] | None
_PREPARED: dict[tuple, str] = {}


def insert_returning_ids(
    conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]
) -> list[int]:
    """Insert `rows` (all with the same keys) into `table`, whose primary key is `id`;
    returns their ids, in the order of the rows."""
    if not rows:
        return []
    if conn.dialect.name == "sqlite":
        start = conn.execute(_largest_sqlite_id(table)).scalar() or 0
        ids = list(range(start + 1, start + 1 + len(rows)))
    else:
        ids = sorted(
            conn.execute(
                sa.text(f"SELECT nextval('{_sequence(conn, table)}') FROM generate_series(1, :n)"),
                {"n": len(rows)},
            ).scalars()
        )
    _executemany(conn, table, rows, ids)
    return ids


def insert_many(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (all with the same keys) into `table`."""
    if rows:
        _executemany(conn, table, rows, None)


def upsert_many(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    key: tuple[str, ...],
    add: tuple[str, ...] = (),
) -> None:
    """Insert `rows` (all with the same keys, at most one per value of the `key`
    columns), or where a row with the same `key` exists, overwrite its other columns,
    adding the `add` columns to the stored values (a count). The rows are written in
    `key` order, so that two transactions that touch the same rows on PostgreSQL lock
    them in the same order and never deadlock. SQLite and PostgreSQL share the syntax."""
    if rows:
        ordered = sorted(rows, key=lambda row: tuple(row[k] for k in key))
        _executemany(conn, table, ordered, None, conflict=(key, add))


def _largest_sqlite_id(table: sa.Table) -> sa.TextClause:
    """The largest id the table has had: its rows', or for an AUTOINCREMENT table one
    since deleted, which SQLite keeps in `sqlite_sequence`."""
    largest = f"SELECT max(id) FROM {table.name}"
    if not table.kwargs.get("sqlite_autoincrement"):
        return sa.text(largest)
    return sa.text(
        f"SELECT max(coalesce(({largest}), 0), "
        "coalesce((SELECT seq FROM sqlite_sequence WHERE name = :name), 0))"
    ).bindparams(name=table.name)


_SEQUENCES: dict[str, str] = {}


def _sequence(conn: Connection, table: sa.Table) -> str:
    name = _SEQUENCES.get(table.name)
    if name is None:
        name = conn.execute(
            sa.text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table.name}
        ).scalar_one()
        _SEQUENCES[table.name] = name
    return name


def _executemany(conn, table, rows, ids: list[int] | None, conflict=None) -> None:
    keys = tuple(rows[0])
    sql = _prepare(conn, table, keys, with_id=ids is not None, conflict=conflict)
    columns = [] if ids is None else [ids]
    columns += [_bound(conn, table, key, [row[key] for row in rows]) for key in keys]
    conn.exec_driver_sql(sql, list(zip(*columns, strict=True)))


_PROCESSORS: dict[tuple[str, str, str], tuple[_Processor, bool]] = {}


def _bound(conn: Connection, table: sa.Table, key: str, values: list[Any]) -> list[Any]:
    """The values of the column `key` as the driver takes them: through the column's
    bind processor (the function SQLAlchemy would call), once per distinct instant."""
    dialect = conn.dialect
    found = _PROCESSORS.get((dialect.name, table.name, key))
    if found is None:
        kind = table.c[key].type
        process = kind.dialect_impl(dialect).bind_processor(dialect)
        found = _PROCESSORS[(dialect.name, table.name, key)] = (
            process,
            isinstance(kind, UTCDateTime),
        )
    process, instant = found
    if process is None:
        return values
    if instant:
        bound = {v: process(v) for v in set(values)}  # a batch shares a few instants
        return [bound[v] for v in values]
    return list(map(process, values))  # JSON stores None as 'null'


def _prepare(conn, table: sa.Table, keys: tuple[str, ...], *, with_id: bool, conflict=None) -> str:
    dialect = conn.dialect
    cache_key = (f"{dialect.name}:{table.name}", "id" if with_id else "", keys, conflict)
    sql = _PREPARED.get(cache_key)
    if sql is None:
        names = (("id",) if with_id else ()) + keys
        columns = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        marks = ", ".join(mark for _ in names)
        sql = f"INSERT INTO {table.name} ({columns}) VALUES ({marks})"
        if conflict is not None:
            sql += _on_conflict(dialect.identifier_preparer.quote, table.name, keys, *conflict)
        _PREPARED[cache_key] = sql
    return sql


def update_many(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    shared: dict[str, Any] | None = None,
) -> None:
    """`UPDATE table SET … WHERE id = row["id"]` for each of `rows` (all with the same
    keys, `id` among them), in one `executemany`. `shared` gives what every row gets
    besides its own values: a value (converted once) or an SQL expression over the row
    whose own constants are plain numbers (`{"revision": table.c.revision + 1}`)."""
    if not rows:
        return
    dialect = conn.dialect
    shared = shared or {}
    keys = tuple(key for key in rows[0] if key != "id")
    constants = tuple(k for k, v in shared.items() if not isinstance(v, sa.ColumnElement))
    expressions = tuple((k, v) for k, v in shared.items() if k not in constants)
    sql, names = _prepare_update(conn, table, keys, constants, expressions)
    values: dict[str, Sequence[Any]] = {"b_id": [row["id"] for row in rows]}
    for key in keys:
        values[f"v_{key}"] = _bound(conn, table, key, [row[key] for row in rows])
    for key in constants:
        values[f"c_{key}"] = _bound(conn, table, key, [shared[key]]) * len(rows)
    columns = [values[name] for name in names]
    if dialect.paramstyle == "qmark":
        params: list[Any] = list(zip(*columns, strict=True))
    else:
        params = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
    conn.exec_driver_sql(sql, params)


_PREPARED_UPDATES: dict[tuple, tuple[str, list[str]]] = {}


def _prepare_update(conn, table, keys, constants, expressions) -> tuple[str, list[str]]:
    """The SQL of an update and the names of its parameters in the driver's order.
    Expressions are written with their constants inline, so that every parameter is
    one of the row's values (`v_`), a shared constant (`c_`) or the id (`b_id`)."""
    dialect = conn.dialect
    inline = {
        key: sa.literal_column(
            str(expression.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        )
        for key, expression in expressions
    }
    cache_key = (dialect.name, table.name, keys, constants, tuple(map(str, inline.values())))
    prepared = _PREPARED_UPDATES.get(cache_key)
    if prepared is None:
        statement = (
            table.update()
            .where(table.c.id == sa.bindparam("b_id"))
            .values(
                **{k: sa.bindparam(f"v_{k}", type_=table.c[k].type) for k in keys},
                **{k: sa.bindparam(f"c_{k}", type_=table.c[k].type) for k in constants},
                **inline,
            )
        )
        compiled = statement.compile(dialect=dialect)
        names = list(compiled.positiontup or compiled.binds)
        prepared = _PREPARED_UPDATES[cache_key] = (compiled.string, names)
    return prepared


def _on_conflict(quote, table: str, keys, key: tuple[str, ...], add: tuple[str, ...]) -> str:
    updates = ", ".join(
        f"{quote(k)} = {table}.{quote(k)} + excluded.{quote(k)}"
        if k in add
        else f"{quote(k)} = excluded.{quote(k)}"
        for k in keys
        if k not in key
    )
    return f" ON CONFLICT ({', '.join(map(quote, key))}) DO UPDATE SET {updates}"
