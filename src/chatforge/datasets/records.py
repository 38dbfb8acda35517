"""A conversation as it goes into a dataset, and its turns.

Roles follow the training convention: the person asking is ``user``; whoever answers (the
moderator of a support chat, the bot, the instructor of a session) is ``assistant``. Consecutive
messages of one side are merged into one turn, because chat formats expect sides to alternate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from chatforge.datasets.pii import redact

USER, ASSISTANT = "user", "assistant"


@dataclass(frozen=True, slots=True)
class DatasetMessage:
    message_id: int
    role: str
    text: str
    """What to train on: the annotator's correction if there is one, else what was written."""
    original: str
    created_at: datetime
    verdict: bool | None = None
    """Good (True) / bad (False) as the annotators' majority rated this turn; None if unrated."""

    @property
    def corrected(self) -> bool:
        return self.text != self.original


@dataclass(frozen=True, slots=True)
class DatasetConversation:
    id: int
    kind: str
    topic: str | None
    channel: str
    created_at: datetime
    ended_at: datetime | None
    user_rating: str | None
    rating: str | None
    labels: tuple[str, ...]
    messages: tuple[DatasetMessage, ...]


@dataclass(frozen=True, slots=True)
class Turn:
    role: str
    text: str
    original: str
    corrected: bool
    verdict: bool | None
    message_ids: tuple[int, ...]

    def as_message(self, *, original: bool = False) -> dict[str, str]:
        return {"role": self.role, "content": self.original if original else self.text}


def _verdict(verdicts: list[bool | None]) -> bool | None:
    # One bad message spoils the turn; a turn is good if something in it was rated good.
    if False in verdicts:
        return False
    return True if True in verdicts else None


def turns(conversation: DatasetConversation) -> list[Turn]:
    """The conversation's messages with consecutive messages of one side merged (``\\n``)."""
    merged: list[Turn] = []
    group: list[DatasetMessage] = []

    def close() -> None:
        if group:
            merged.append(
                Turn(
                    role=group[0].role,
                    text="\n".join(m.text for m in group),
                    original="\n".join(m.original for m in group),
                    corrected=any(m.corrected for m in group),
                    verdict=_verdict([m.verdict for m in group]),
                    message_ids=tuple(m.message_id for m in group),
                )
            )

    for message in conversation.messages:
        if group and message.role != group[0].role:
            close()
            group = []
        group.append(message)
    close()
    return merged


def side(kind: str, *, sender_id: int, owner_id: int, instructors: frozenset[int]) -> str:
    """``user`` for the person asking, ``assistant`` for whoever answers them.

    In support and bot chats the owner asks; in a session the owner and the instructors answer.
    """
    if kind == "session":
        return ASSISTANT if sender_id == owner_id or sender_id in instructors else USER
    return USER if sender_id == owner_id else ASSISTANT


def redacted(conversation: DatasetConversation) -> DatasetConversation:
    """The same conversation with emails and phone numbers replaced in every text."""
    return replace(
        conversation,
        messages=tuple(
            replace(m, text=redact(m.text), original=redact(m.original))
            for m in conversation.messages
        ),
    )
