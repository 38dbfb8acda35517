"""Exports of a session room's messages (L10): JSON, CSV and plain text, streamed.

Access is checked when the export is opened, so a refusal is an error and not half a file; the
rows are then read in batches while the response is being sent. Private messages are included
only when an instructor asks for them. Deleted messages appear as deleted, without their text.
CSV cells that a spreadsheet would run as a formula are neutralised.
"""

from __future__ import annotations

import csv
import enum
import io
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import aliased

from chatforge.errors import Forbidden
from chatforge.services.access import is_instructor, load_session
from chatforge.store.database import Database
from chatforge.store.models import Message, User

BATCH = 500
DELETED_TEXT = "(message deleted)"
# A spreadsheet treats a cell starting with one of these as a formula (or as one after trimming).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = (
    "seq",
    "message_id",
    "created_at",
    "sender_id",
    "sender",
    "recipient_id",
    "recipient",
    "private",
    "reply_to",
    "deleted",
    "body",
)


class ExportFormat(enum.StrEnum):
    json = "json"
    csv = "csv"
    txt = "txt"


MEDIA_TYPES = {
    ExportFormat.json: "application/json",
    ExportFormat.csv: "text/csv; charset=utf-8",
    ExportFormat.txt: "text/plain; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Export:
    filename: str
    media_type: str
    chunks: AsyncIterator[str]


def neutralise_cell(value: str) -> str:
    """Make a CSV cell inert in spreadsheets: a leading quote before any formula character."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


class ExportService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def open(
        self,
        actor: User,
        conversation_id: int,
        format: ExportFormat,
        *,
        include_private: bool = False,
    ) -> Export:
        """Check access and return the export, whose chunks read the messages lazily.

        Any participant may export what everyone in the room sees; ``include_private`` is for
        the session's instructors (``Forbidden`` otherwise).
        """
        async with self.db.read() as session:
            conversation = await load_session(session, actor, conversation_id)
            if include_private and not await is_instructor(session, actor, conversation):
                raise Forbidden(
                    "Only the session's instructors can export private messages.",
                    code="not_instructor",
                )
            title = conversation.title
        rows = self._rows(conversation_id, include_private)
        writer = {ExportFormat.json: _json, ExportFormat.csv: _csv, ExportFormat.txt: _txt}[format]
        return Export(
            filename=f"session-{conversation_id}.{format.value}",
            media_type=MEDIA_TYPES[format],
            chunks=writer(rows, conversation_id, title),
        )

    async def _rows(self, conversation_id: int, include_private: bool) -> AsyncIterator[list[Any]]:
        sender, recipient = aliased(User), aliased(User)
        after = 0
        while True:
            query = (
                select(Message, sender.display_name, recipient.display_name)
                .join(sender, sender.id == Message.sender_id)
                .outerjoin(recipient, recipient.id == Message.recipient_id)
                .where(Message.conversation_id == conversation_id, Message.id > after)
                .order_by(Message.id)
                .limit(BATCH)
            )
            if not include_private:
                query = query.where(Message.recipient_id.is_(None))
            # One short read per batch: a slow download never holds a transaction open.
            async with self.db.read() as session:
                batch = (await session.execute(query)).all()
            if not batch:
                return
            yield [
                _record(message, sender_name, recipient_name)
                for message, sender_name, recipient_name in batch
            ]
            after = batch[-1][0].id


def _record(message: Message, sender_name: str, recipient_name: str | None) -> dict[str, Any]:
    deleted = message.deleted_at is not None
    return {
        "seq": message.seq,
        "message_id": message.id,
        "created_at": message.created_at.isoformat(),
        "sender_id": message.sender_id,
        "sender": sender_name,
        "recipient_id": message.recipient_id,
        "recipient": recipient_name,
        "private": message.recipient_id is not None,
        "reply_to": message.reply_to_id,
        "deleted": deleted,
        "body": DELETED_TEXT if deleted else message.body,
    }


async def _json(
    batches: AsyncIterator[list[dict[str, Any]]], conversation_id: int, title: str
) -> AsyncIterator[str]:
    head = json.dumps({"session_id": conversation_id, "title": title}, ensure_ascii=False)
    yield head[:-1] + ', "messages": ['
    first = True
    async for batch in batches:
        for record in batch:
            yield ("" if first else ",") + "\n" + json.dumps(record, ensure_ascii=False)
            first = False
    yield "\n]}\n"


async def _csv(
    batches: AsyncIterator[list[dict[str, Any]]], conversation_id: int, title: str
) -> AsyncIterator[str]:
    yield _csv_lines([COLUMNS])
    async for batch in batches:
        yield _csv_lines([[record[column] for column in COLUMNS] for record in batch])


def _csv_lines(rows: Iterable[Iterable[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([_csv_cell(value) for value in row])
    return buffer.getvalue()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return neutralise_cell(str(value))


async def _txt(
    batches: AsyncIterator[list[dict[str, Any]]], conversation_id: int, title: str
) -> AsyncIterator[str]:
    yield f"{title} (session {conversation_id})\n\n"
    async for batch in batches:
        lines = []
        for record in batch:
            when = datetime.fromisoformat(record["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
            who = record["sender"]
            if record["private"]:
                who += f" -> {record['recipient']} (private)"
            lines.append(f"[{when} UTC] {who}: {record['body']}\n")
        yield "".join(lines)
