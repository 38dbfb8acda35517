"""``store.bulk``, which the write lane runs on: on SQLite it executes SQLAlchemy's compiled
statements on the driver itself, and must store and read back exactly what SQLAlchemy would."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.dialects import sqlite

from chatforge.store.bulk import among, compiled_form, driver_values, multi_row, padded
from chatforge.store.database import Database
from chatforge.store.models import Base, ConversationKind, ConversationStatus, Role
from chatforge.store.write_lane import Statements, in_session

USERS = Base.metadata.tables["users"]
STATES = Base.metadata.tables["bot_states"]
CONVERSATIONS = Base.metadata.tables["conversations"]
NEW_USER = insert(USERS)
NEW_STATE = insert(STATES)
NEW_CONVERSATION = insert(CONVERSATIONS)
SET_STATE = update(STATES).where(STATES.c.id == bindparam("row_id"))
STATES_OF = select(
    STATES.c.user_id, STATES.c.state, STATES.c["values"], STATES.c.idle_deadline
).order_by(STATES.c.user_id)
MOMENT = datetime(2026, 11, 24, 9, 30, 15, 123456, tzinfo=UTC)
T = TypeVar("T")


def user(name: str) -> dict[str, object]:
    return {
        "username": name,
        "display_name": name.title(),
        "password_hash": None,
        "role": Role.user,
        "is_active": True,
        "token_version": 0,
        "created_at": MOMENT,
    }


def state(user_id: int, values: dict[str, object], deadline: datetime | None) -> dict[str, object]:
    return {
        "bot": "quiz",
        "user_id": user_id,
        "state": "asking",
        "values": values,
        "channel": "whatsapp",
        "idle_deadline": deadline,
        "updated_at": MOMENT,
    }


async def on_lane(db: Database, work: Callable[[Statements], T]) -> T:
    """``work`` on the driver path: the write lane's ``sqlite3`` connection."""
    return await db.transact(work)


async def through_sqlalchemy(db: Database, work: Callable[[Statements], T]) -> T:
    """``work`` on a SQLAlchemy connection (as on PostgreSQL)."""
    async with db.write() as session:
        return await session.run_sync(in_session, work)


async def test_the_driver_path_stores_and_reads_what_sqlalchemy_does(db: Database) -> None:
    values = {"answers": ["1", "é"], "n": 3, "ok": True, "none": None}

    def store(names: tuple[str, str]) -> Callable[[Statements], None]:
        def work(statements: Statements) -> None:
            statements.run(NEW_USER, [user(name) for name in names])
            ids = dict(statements.rows(select(USERS.c.username, USERS.c.id)))
            first, second = (ids[name] for name in names)
            statements.run(NEW_STATE, [state(first, values, MOMENT), state(second, {}, None)])

        return work

    await on_lane(db, store(("ada", "bob")))
    await through_sqlalchemy(db, store(("cy", "dee")))

    async with db.read() as session:
        ids = dict(list(await session.execute(select(USERS.c.username, USERS.c.id))))
        raw = await session.execute(
            text('SELECT user_id, "values", idle_deadline, updated_at FROM bot_states')
        )
        stored = {row[0]: row[1:] for row in raw}
    # The stored text is the same whichever way it went in.
    assert stored[ids["ada"]] == stored[ids["cy"]]
    assert stored[ids["bob"]] == stored[ids["dee"]]
    # And reads give the same Python values: aware datetimes, JSON, booleans.

    def read(statements: Statements) -> list[tuple[object, ...]]:
        return statements.rows(STATES_OF)

    assert await on_lane(db, read) == await through_sqlalchemy(db, read)
    found = {row[0]: row for row in await on_lane(db, read)}
    assert found[ids["ada"]][2:] == (values, MOMENT)
    assert found[ids["bob"]][3] is None
    active = select(USERS.c.is_active).where(USERS.c.id == ids["ada"])
    assert await on_lane(db, lambda statements: statements.rows(active)) == [(True,)]


async def test_updates_set_the_columns_each_row_names(db: Database) -> None:
    def work(statements: Statements) -> list[tuple[object, ...]]:
        statements.run(NEW_USER, [user("eve")])
        [(uid,)] = statements.rows(select(USERS.c.id))
        statements.run(NEW_STATE, [state(uid, {}, None)])
        [(row_id,)] = statements.rows(select(STATES.c.id))
        later = datetime(2026, 11, 25, tzinfo=UTC)
        statements.run(
            SET_STATE,
            [{"row_id": row_id, "state": "done", "values": {"a": 1}, "updated_at": later}],
        )
        return [(uid,), *statements.rows(STATES_OF)]

    [(uid,), *states] = await on_lane(db, work)
    assert states == [(uid, "done", {"a": 1}, None)]


async def test_a_statement_may_fix_values_and_enums_go_in_as_sqlalchemy_stores_them(
    db: Database,
) -> None:
    def work(statements: Statements) -> tuple[int, list[tuple[object, ...]]]:
        statements.run(NEW_USER, [user("fay")])
        [(uid,)] = statements.rows(select(USERS.c.id))
        row = {
            "kind": ConversationKind.bot,
            "status": ConversationStatus.active,
            "title": "t",
            "owner_id": uid,
            "channel": "web",
            "last_seq": 0,
            "created_at": MOMENT,
        }
        statements.run(NEW_CONVERSATION, [row])
        # ``kind == bot`` is a value the statement carries, not a parameter.
        bots = select(CONVERSATIONS.c.owner_id, CONVERSATIONS.c.kind).where(
            CONVERSATIONS.c.kind == ConversationKind.bot
        )
        return uid, statements.rows(bots)

    uid, bots = await on_lane(db, work)
    assert bots == [(uid, ConversationKind.bot)]


async def test_lists_are_padded_to_a_few_sizes(db: Database) -> None:
    assert padded("u", [5]) == (8, {f"u_{i}": 5 for i in range(8)})
    size, params = padded("u", range(9))
    assert size == 32 and params["u_8"] == 8 and params["u_31"] == 8
    with pytest.raises(ValueError, match="empty"):
        padded("u", [])
    with pytest.raises(ValueError, match="more than 512"):
        padded("u", range(513))

    def work(statements: Statements) -> list[tuple[object, ...]]:
        statements.run(NEW_USER, [user(name) for name in ("gus", "hal", "ivy")])
        size, names = padded("name", ["gus", "ivy"])
        query = select(USERS.c.username).where(among(USERS.c.username, "name", size))
        return statements.rows(query, names)

    assert sorted(await on_lane(db, work)) == [("gus",), ("ivy",)]


async def test_what_the_driver_path_cannot_do_is_refused_loudly(db: Database) -> None:
    expanding = select(USERS.c.id).where(USERS.c.id.in_([1, 2]))
    with pytest.raises(ValueError, match="among"):
        await on_lane(db, lambda statements: statements.rows(expanding))
    # Column defaults are not applied: a row must name every column that has one.
    incomplete = {k: v for k, v in user("jo").items() if k != "created_at"}
    with pytest.raises(KeyError, match="created_at"):
        await on_lane(db, lambda statements: statements.run(NEW_USER, [incomplete]))


def test_inserts_are_split_into_a_few_multi_row_statements() -> None:
    sql = "INSERT INTO t (a, b) VALUES (?, ?)"
    rows = [(n, f"v{n}") for n in range(85)]
    chunks = multi_row(sql, rows)
    assert chunks is not None
    assert [len(params) // 2 for _, params in chunks] == [64, 16, 4, 1]
    assert chunks[2][0] == "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?), (?, ?)"
    assert [value for _, params in chunks for value in params] == [v for row in rows for v in row]
    assert multi_row(sql, rows[:1]) is None  # one row: the plain statement
    for other in (
        "UPDATE t SET a=? WHERE b=?",
        "INSERT INTO t (a) VALUES (?) RETURNING id",
        "INSERT INTO t (a, b) VALUES (?, lower(?))",
    ):
        assert multi_row(other, rows) is None


async def test_many_rows_land_in_order_through_both_driver_paths(db: Database) -> None:
    names = [f"user{n:03}" for n in range(85)]
    await through_sqlalchemy(
        db, lambda statements: statements.run(NEW_USER, [user(f"a-{name}") for name in names])
    )

    def insert_more(statements: Statements) -> list[int]:
        return statements.insert_ids(NEW_USER, [user(f"b-{name}") for name in names])

    ids = await db.transact(insert_more)
    async with db.read() as session:
        stored = list(await session.execute(select(USERS.c.id, USERS.c.username).order_by("id")))
    assert [name for _, name in stored] == [f"a-{n}" for n in names] + [f"b-{n}" for n in names]
    assert ids == [uid for uid, name in stored if name.startswith("b-")]


async def test_one_row_gets_its_own_id_among_rows_inserted_before(db: Database) -> None:
    first = await db.transact(lambda s: s.insert_ids(NEW_USER, [user("one-a"), user("one-b")]))
    [alone] = await db.transact(lambda s: s.insert_ids(NEW_USER, [user("one-c")]))
    async with db.read() as session:
        found = await session.execute(select(USERS.c.username, USERS.c.id))
        stored = dict(found.all())
    assert (first, alone) == ([stored["one-a"], stored["one-b"]], stored["one-c"])


def test_parameters_of_one_column_or_of_columns_without_conversion() -> None:
    dialect = sqlite.dialect()
    by_name = select(USERS.c.id).where(USERS.c.username == bindparam("name"))
    one = compiled_form(by_name, (), dialect)
    assert driver_values(one, [{"name": "ada"}, {"name": "bob"}]) == [("ada",), ("bob",)]
    two = compiled_form(select(USERS.c.id).where(among(USERS.c.id, "id", 2)), (), dialect)
    assert driver_values(two, [{"id_0": 7, "id_1": 9}]) == [(7, 9)]
    with pytest.raises(KeyError, match="id_1"):
        driver_values(two, [{"id_0": 7}])
