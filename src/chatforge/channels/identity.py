"""Channel identities: normalising sender ids and mapping each to one user account (B2).

``whatsapp:+27 82 123-4567`` and ``+27821234567`` are the same person, so ids are normalised
before lookup. A new identity gets a new account with no password (it can only be reached
through its channel) whose username is derived from the channel and id.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.errors import Invalid
from chatforge.store.bulk import among, padded
from chatforge.store.models import Base, ChannelIdentity, Role, User
from chatforge.store.types import utcnow
from chatforge.store.write_lane import Statements, in_session

E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
PSID_RE = re.compile(r"^\d{1,64}$")
CONSOLE_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_PHONE_NOISE = re.compile(r"[\s().\-]")
PREFIXES = {"whatsapp": "wa", "messenger": "fb", "console": "cli", "web": "web"}


def normalize_whatsapp(raw: str) -> str:
    """``whatsapp:+27 82 123-4567`` -> ``+27821234567``; raises ``Invalid`` if not a number."""
    value = raw.strip()
    if value.lower().startswith("whatsapp:"):
        value = value[len("whatsapp:") :]
    value = _PHONE_NOISE.sub("", value)
    if value.startswith("00"):
        value = "+" + value[2:]
    if not E164_RE.fullmatch(value):
        raise Invalid("The sender is not a WhatsApp phone number.", code="invalid_sender")
    return value


def normalize_messenger(raw: str) -> str:
    value = raw.strip()
    if not PSID_RE.fullmatch(value):
        raise Invalid("The sender is not a Messenger id.", code="invalid_sender")
    return value


def normalize_console(raw: str) -> str:
    value = raw.strip().lower()
    if not CONSOLE_RE.fullmatch(value):
        raise Invalid("Console names are 1-64 letters, digits, '.', '_', '@' or '-'.")
    return value


NORMALIZERS = {
    "whatsapp": normalize_whatsapp,
    "messenger": normalize_messenger,
    "console": normalize_console,
}


def normalize(channel: str, raw: str) -> str:
    """The canonical external id of ``raw`` on ``channel``; raises ``Invalid``."""
    normalizer = NORMALIZERS.get(channel)
    if normalizer is None:
        raise Invalid(f"Unknown channel {channel!r}.", code="unknown_channel")
    return normalizer(raw)


def _username(channel: str, external_id: str) -> str:
    slug = re.sub(r"[^a-z0-9]", "", external_id.lower())[:24] or secrets.token_hex(4)
    return f"{PREFIXES.get(channel, channel[:3])}-{slug}"


def _display_name(channel: str, external_id: str, profile_name: str | None) -> str:
    name = " ".join((profile_name or "").split())
    name = "".join(c for c in name if ord(c) >= 32)[:64]
    if name:
        return name
    if channel == "whatsapp":
        # Enough to tell people apart in a list, without showing the whole number.
        return f"WhatsApp …{external_id[-4:]}"
    return f"{channel.capitalize()} {external_id[-6:]}"[:64]


@dataclass(frozen=True, slots=True)
class Account:
    """What the gateway and the bots need of a sender's account (no ORM object to load)."""

    id: int
    display_name: str
    is_active: bool


_USERS = Base.metadata.tables[User.__tablename__]
_IDENTITIES = Base.metadata.tables[ChannelIdentity.__tablename__]
_NEW_USER = insert(_USERS)
_NEW_IDENTITY = insert(_IDENTITIES)


@cache
def _identities_query(size: int) -> Select[str, int, str, bool]:
    return (
        select(_IDENTITIES.c.external_id, _USERS.c.id, _USERS.c.display_name, _USERS.c.is_active)
        .join(_USERS, _IDENTITIES.c.user_id == _USERS.c.id)
        .where(
            _IDENTITIES.c.channel == bindparam("channel"),
            among(_IDENTITIES.c.external_id, "id", size),
        )
    )


@cache
def _usernames_query(size: int) -> Select[str, int]:
    return select(_USERS.c.username, _USERS.c.id).where(among(_USERS.c.username, "name", size))


def accounts_for_identities(
    statements: Statements, channel: str, senders: Mapping[str, str | None]
) -> dict[str, Account]:
    """The accounts of (normalised) identities on ``channel``, created on first contact.

    ``senders`` maps each external id to the profile name it came with (the new account's
    display name). One query finds the known ones and a few bulk statements create the rest, in
    the caller's write transaction; on PostgreSQL two first messages racing each other end with
    one ``IntegrityError`` on the unique (channel, external_id), which the channel retries.
    """
    if not senders:
        return {}
    size, ids = padded("id", senders)
    found = statements.rows(_identities_query(size), {"channel": channel, **ids})
    accounts = {row[0]: Account(row[1], row[2], bool(row[3])) for row in found}
    new = [external_id for external_id in senders if external_id not in accounts]
    if not new:
        return accounts
    wanted = {external_id: _username(channel, external_id) for external_id in new}
    size, names = padded("name", set(wanted.values()))
    taken = {row[0] for row in statements.rows(_usernames_query(size), names)}
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for external_id in new:
        username = wanted[external_id]
        while username in taken:
            username = f"{wanted[external_id][:27]}-{secrets.token_hex(2)}"
        taken.add(username)
        rows.append(
            {
                "username": username,
                "display_name": _display_name(channel, external_id, senders[external_id]),
                "password_hash": None,
                "role": Role.user,
                "is_active": True,
                "token_version": 0,
                "created_at": now,
            }
        )
    statements.run(_NEW_USER, rows)
    # Usernames are unique: they find the new accounts' ids.
    size, names = padded("name", [row["username"] for row in rows])
    created = {row[0]: row[1] for row in statements.rows(_usernames_query(size), names)}
    statements.run(
        _NEW_IDENTITY,
        [
            {
                "user_id": created[row["username"]],
                "channel": channel,
                "external_id": external_id,
                "created_at": now,
            }
            for external_id, row in zip(new, rows, strict=True)
        ],
    )
    for external_id, row in zip(new, rows, strict=True):
        accounts[external_id] = Account(created[row["username"]], row["display_name"], True)
    return accounts


async def user_for_identity(
    session: AsyncSession, channel: str, external_id: str, profile_name: str | None = None
) -> User:
    """The account of one (normalised) channel identity, created on first contact."""
    accounts = await session.run_sync(
        in_session,
        lambda statements: accounts_for_identities(
            statements, channel, {external_id: profile_name}
        ),
    )
    user = await session.get(User, accounts[external_id].id)
    assert user is not None  # found or created in this transaction
    return user


async def external_id_of(session: AsyncSession, user_id: int, channel: str) -> str | None:
    """The user's id on ``channel`` (to send them a message there), or None."""
    found: str | None = await session.scalar(
        select(ChannelIdentity.external_id)
        .where(ChannelIdentity.user_id == user_id, ChannelIdentity.channel == channel)
        .order_by(ChannelIdentity.id)
        .limit(1)
    )
    return found
