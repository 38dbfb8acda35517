"""The audit log: who did what to which record, and when."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.store.models import AuditRecord


def record(
    session: AsyncSession,
    *,
    actor_id: int | None,
    action: str,
    target_type: str,
    target_id: int | None,
    **detail: Any,
) -> None:
    """Add an audit record to the caller's transaction (written only if that commits)."""
    session.add(
        AuditRecord(
            actor_id=actor_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            detail=detail,
        )
    )


async def recent(session: AsyncSession, *, limit: int = 100) -> list[AuditRecord]:
    rows = await session.scalars(select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit))
    return list(rows)
