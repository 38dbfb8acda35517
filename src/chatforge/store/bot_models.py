"""Tables of the bots and channels (B1-B7): per-user bot state, the interaction log, and the
inbound message ids that make webhooks idempotent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from chatforge.store.models import Base
from chatforge.store.types import UTCDateTime, utcnow


class BotState(Base):
    """Where one user stands with one bot: state, stored values, idle deadline (B1, B7)."""

    __tablename__ = "bot_states"
    __table_args__ = (
        UniqueConstraint("bot", "user_id"),
        Index("ix_bot_states_idle_deadline", "idle_deadline"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bot: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # None until the initial state has been entered successfully.
    state: Mapped[str | None] = mapped_column(String(64))
    values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The channel the user last wrote from: where an idle timeout's messages go.
    channel: Mapped[str] = mapped_column(String(32))
    idle_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a step last changed the row (a step that changes nothing does not write it).
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BotInteraction(Base):
    """One inbound message to a bot, as logged for quotas and analytics (B3, B5)."""

    __tablename__ = "bot_interactions"
    __table_args__ = (
        # The quota query: this user's counted requests to this bot since a time.
        Index("ix_bot_interactions_quota", "bot", "user_id", "counted", "created_at"),
        Index("ix_bot_interactions_bot_created_at", "bot", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bot: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    keyword: Mapped[str] = mapped_column(String(64))
    # answered | help | unknown | refused | error | handoff (bots may add their own)
    outcome: Mapped[str] = mapped_column(String(16))
    counted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboundMessage(Base):
    """A channel message id already handled; the primary key makes a retried webhook a no-op."""

    __tablename__ = "inbound_messages"

    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
