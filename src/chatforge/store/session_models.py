"""Current-state tables of live session rooms (L1-L12): room settings, reactions, raised hands,
mutes and profanity strikes.

Each change to them is also an event in the room's log, written in the same transaction; these
tables answer "what is the state now" without replaying the log.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from chatforge.store.models import Base
from chatforge.store.types import UTCDateTime, utcnow


class SessionRoom(Base):
    """Per-room settings of a live session (a ``Conversation`` of kind ``session``)."""

    __tablename__ = "session_rooms"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    # Slow mode (L12): the least time between two messages of one participant; 0 is off.
    slow_mode_seconds: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Reaction(Base):
    """One person's reaction with one emoji to one message (L4); toggling deletes the row."""

    __tablename__ = "reactions"
    __table_args__ = (Index("ix_reactions_conversation_message", "conversation_id", "message_id"),)

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    emoji: Mapped[str] = mapped_column(String(16), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RaisedHand(Base):
    """A hand that is up (L5); lowering it deletes the row, so the table is the live queue."""

    __tablename__ = "raised_hands"
    __table_args__ = (Index("ix_raised_hands_conversation_raised", "conversation_id", "raised_at"),)

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class Mute(Base):
    """A user muted in a room (L7). ``until`` None is permanent; a past ``until`` is no mute, so
    nothing has to run to lift an expired one."""

    __tablename__ = "mutes"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    muted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(200), default="")
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProfanityStrike(Base):
    """One profanity violation of a user in a room (L8), counted over a rolling hour."""

    __tablename__ = "profanity_strikes"
    __table_args__ = (
        Index("ix_profanity_strikes_window", "conversation_id", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
