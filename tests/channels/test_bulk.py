"""``store.bulk``, which the webhook batches run on: on SQLite it executes SQLAlchemy's compiled
statements on the driver itself, and must store and read back exactly what SQLAlchemy would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.dialects import sqlite

from chatforge.settings import Settings
from chatforge.store.bulk import Bulk, among, compiled_form, driver_values, multi_row, padded
from chatforge.store.database import Database
from chatforge.store.models import Base, ConversationKind, ConversationStatus, Role
from chatforge.store.write_lane import Statements

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


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.resolved_database_url)
    try:
        yield database
    finally:
        await database.dispose()


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


async def test_the_driver_path_stores_and_reads_what_sqlalchemy_does(db: Database) -> None:
    async with db.write() as session:
        fast = await Bulk.of(session)
        assert await Bulk.of(session) is fast  # one per transaction
        slow = Bulk(fast.connection, None)  # the same statements through SQLAlchemy
        await fast.run(NEW_USER, [user("ada"), user("bob")])
        await slow.run(NEW_USER, [user("cy"), user("dee")])
        ids = {name: uid for uid, name in await fast.rows(select(USERS.c.id, USERS.c.username))}
        values = {"answers": ["1", "é"], "n": 3, "ok": True, "none": None}
        await fast.run(NEW_STATE, [state(ids["ada"], values, MOMENT), state(ids["bob"], {}, None)])
        await slow.run(NEW_STATE, [state(ids["cy"], values, MOMENT), state(ids["dee"], {}, None)])
        # The stored text is the same whichever way it went in.
        raw = await session.execute(
            text('SELECT user_id, "values", idle_deadline, updated_at FROM bot_states')
        )
        stored = {row[0]: row[1:] for row in raw}
        assert stored[ids["ada"]] == stored[ids["cy"]]
        assert stored[ids["bob"]] == stored[ids["dee"]]
        # And reads give the same Python values: aware datetimes, JSON, booleans.
        assert await fast.rows(STATES_OF) == await slow.rows(STATES_OF)
        found = {row[0]: row for row in await fast.rows(STATES_OF)}
        assert found[ids["ada"]][2:] == (values, MOMENT)
        assert found[ids["bob"]][3] is None
        [(active,)] = await fast.rows(select(USERS.c.is_active).where(USERS.c.id == ids["ada"]))
        assert active is True


async def test_updates_set_the_columns_each_row_names(db: Database) -> None:
    async with db.write() as session:
        bulk = await Bulk.of(session)
        await bulk.run(NEW_USER, [user("eve")])
        [(uid,)] = await bulk.rows(select(USERS.c.id))
        await bulk.run(NEW_STATE, [state(uid, {}, None)])
        [(row_id,)] = await bulk.rows(select(STATES.c.id))
        later = datetime(2026, 11, 25, tzinfo=UTC)
        await bulk.run(
            SET_STATE,
            [{"row_id": row_id, "state": "done", "values": {"a": 1}, "updated_at": later}],
        )
        assert await bulk.rows(STATES_OF) == [(uid, "done", {"a": 1}, None)]


async def test_a_statement_may_fix_values_and_enums_go_in_as_sqlalchemy_stores_them(
    db: Database,
) -> None:
    async with db.write() as session:
        bulk = await Bulk.of(session)
        await bulk.run(NEW_USER, [user("fay")])
        [(uid,)] = await bulk.rows(select(USERS.c.id))
        row = {
            "kind": ConversationKind.bot,
            "status": ConversationStatus.active,
            "title": "t",
            "owner_id": uid,
            "channel": "web",
            "last_seq": 0,
            "created_at": MOMENT,
        }
        await bulk.run(NEW_CONVERSATION, [row])
        # ``kind == bot`` is a value the statement carries, not a parameter.
        bots = select(CONVERSATIONS.c.owner_id, CONVERSATIONS.c.kind).where(
            CONVERSATIONS.c.kind == ConversationKind.bot
        )
        assert await bulk.rows(bots) == [(uid, ConversationKind.bot)]


async def test_lists_are_padded_to_a_few_sizes(db: Database) -> None:
    assert padded("u", [5]) == (8, {f"u_{i}": 5 for i in range(8)})
    size, params = padded("u", range(9))
    assert size == 32 and params["u_8"] == 8 and params["u_31"] == 8
    with pytest.raises(ValueError, match="empty"):
        padded("u", [])
    with pytest.raises(ValueError, match="more than 512"):
        padded("u", range(513))
    async with db.write() as session:
        bulk = await Bulk.of(session)
        await bulk.run(NEW_USER, [user(name) for name in ("gus", "hal", "ivy")])
        size, names = padded("name", ["gus", "ivy"])
        query = select(USERS.c.username).where(among(USERS.c.username, "name", size))
        assert sorted(await bulk.rows(query, names)) == [("gus",), ("ivy",)]


async def test_what_the_driver_path_cannot_do_is_refused_loudly(db: Database) -> None:
    async with db.write() as session:
        bulk = await Bulk.of(session)
        expanding = select(USERS.c.id).where(USERS.c.id.in_([1, 2]))
        with pytest.raises(ValueError, match="among"):
            await bulk.rows(expanding)
        # Column defaults are not applied: a row must name every column that has one.
        incomplete = {k: v for k, v in user("jo").items() if k != "created_at"}
        with pytest.raises(KeyError, match="created_at"):
            await bulk.run(NEW_USER, [incomplete])


def test_inserts_are_split_into_a_few_multi_row_statements() -> None:
    sql = "INSERT INTO t (a, b) VALUES (?, ?)"
    rows = [(n, f"v{n}") for n in range(85)]
    chunks = multi_row(sql, rows)
    assert chunks is not None
    assert [len(params) // 2 for _, params in chunks] == [64, 16, 4, 1]
    assert chunks[2][0] == "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?), (?, ?)"
    assert [value for _, params in chunks for value in params] == [v for row in rows for v in row]
    # One statement per thread hop matters more than few shapes: the rest after 64 in one.
    exact = multi_row(sql, rows, exact_tail=True)
    assert exact is not None and [len(params) // 2 for _, params in exact] == [64, 21]
    assert [value for _, params in exact for value in params] == [v for row in rows for v in row]
    assert multi_row(sql, rows[:1]) is None  # one row: the plain statement
    for other in (
        "UPDATE t SET a=? WHERE b=?",
        "INSERT INTO t (a) VALUES (?) RETURNING id",
        "INSERT INTO t (a, b) VALUES (?, lower(?))",
    ):
        assert multi_row(other, rows) is None


async def test_many_rows_land_in_order_through_both_driver_paths(db: Database) -> None:
    names = [f"user{n:03}" for n in range(85)]
    async with db.write() as session:
        await (await Bulk.of(session)).run(NEW_USER, [user(f"a-{name}") for name in names])

    def insert_more(statements: Statements) -> list[int]:
        return statements.insert_ids(NEW_USER, [user(f"b-{name}") for name in names])

    ids = await db.transact(insert_more)
    async with db.read() as session:
        stored = list(await session.execute(select(USERS.c.id, USERS.c.username).order_by("id")))
    assert [name for _, name in stored] == [f"a-{n}" for n in names] + [f"b-{n}" for n in names]
    assert ids == [uid for uid, name in stored if name.startswith("b-")]


def test_parameters_of_one_column_or_of_columns_without_conversion() -> None:
    dialect = sqlite.dialect()
    by_name = select(USERS.c.id).where(USERS.c.username == bindparam("name"))
    one = compiled_form(by_name, (), dialect)
    assert driver_values(one, [{"name": "ada"}, {"name": "bob"}]) == [("ada",), ("bob",)]
    two = compiled_form(select(USERS.c.id).where(among(USERS.c.id, "id", 2)), (), dialect)
    assert driver_values(two, [{"id_0": 7, "id_1": 9}]) == [(7, 9)]
    with pytest.raises(KeyError, match="id_1"):
        driver_values(two, [{"id_0": 7}])
