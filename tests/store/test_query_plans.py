"""Look-ups of a user's conversations go through the owners' index on SQLite.

Every bot conversation has the same kind, status and assignee, so a plan through
``(kind, status)`` or ``assignee_id`` reads all of them for each batch: a cost that grows with
the number of users instead of the batch. SQLite keeps no statistics here, so only the form of
the query decides the plan.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import column, event, select, table
from sqlalchemy.dialects import postgresql, sqlite

from chatforge.bots.transcript import _open_conversations, find_bot_conversation
from chatforge.context import AppContext
from chatforge.services.handoff import _open_handoffs
from chatforge.settings import Settings
from chatforge.store.bulk import unindexed
from chatforge.store.models import Role
from tests.factories import make_topic, make_user


def plan(database: Path, statement: Any) -> str:
    compiled = statement.compile(dialect=sqlite.dialect())
    params = [1] * len(compiled.positiontup or ())
    with sqlite3.connect(database) as connection:
        rows = connection.execute(f"EXPLAIN QUERY PLAN {compiled.string}", params).fetchall()
    return "\n".join(row[-1] for row in rows)


@pytest.mark.parametrize(
    "statement",
    [_open_conversations(8), _open_handoffs(32)],
    ids=["open bot conversations", "open hand-offs"],
)
def test_owner_lookups_use_the_owners_index(migrated_database: Path, statement: Any) -> None:
    found = plan(migrated_database, statement)

    assert "USING INDEX ix_conversations_owner_id (owner_id=?)" in found
    assert "kind_status" not in found
    assert "assignee" not in found


def test_unindexed_is_a_unary_plus_on_sqlite_only() -> None:
    things = table("things", column("kind"), column("owner"))
    query = select(things.c.owner).where(unindexed(things.c.kind) == "a")

    assert "WHERE +things.kind = ?" in str(query.compile(dialect=sqlite.dialect()))
    assert "WHERE things.kind = %(param_1)s" in str(query.compile(dialect=postgresql.dialect()))


async def test_a_users_own_conversations_are_found_through_the_owners_index(
    ctx: AppContext, settings: Settings
) -> None:
    user = await make_user(ctx)
    topic = await make_topic(ctx, await make_user(ctx, Role.admin))
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        if "FROM conversations" in sql and "owner_id = ?" in sql:
            seen.append((sql, params))

    event.listen(ctx.db.engine.sync_engine, "before_cursor_execute", capture)
    await ctx.support.open(user, topic.id)
    await ctx.handoff.open_conversation_of(user.id)
    async with ctx.db.read() as session:
        await find_bot_conversation(session, "challenge", user.id)
    event.remove(ctx.db.engine.sync_engine, "before_cursor_execute", capture)

    assert len(seen) == 3
    with sqlite3.connect(settings.data_dir / "chatforge.db") as connection:
        for sql, params in seen:
            found = " ".join(r[-1] for r in connection.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            assert "ix_conversations_owner_id (owner_id=?)" in found, sql
            assert "kind_status" not in found and "assignee" not in found, sql
