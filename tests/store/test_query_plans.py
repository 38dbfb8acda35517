"""The webhook batch's look-ups by owner go through the owners' index on SQLite.

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
from sqlalchemy import column, select, table
from sqlalchemy.dialects import postgresql, sqlite

from chatforge.bots.transcript import _open_conversations
from chatforge.services.handoff import _open_handoffs
from chatforge.store.bulk import unindexed


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
