"""Channel identities: normalising sender ids and mapping each to one user account (B2).

``whatsapp:+27 82 123-4567`` and ``+27821234567`` are the same person, so ids are normalised
before lookup. A new identity gets a new account with no password (it can only be reached
through its channel) whose username is derived from the channel and id.
"""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.errors import Invalid
from chatforge.store.models import ChannelIdentity, Role, User

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


async def user_for_identity(
    session: AsyncSession, channel: str, external_id: str, profile_name: str | None = None
) -> User:
    """The account of a (normalised) channel identity, created on first contact.

    Runs in the caller's write transaction; on PostgreSQL two first messages racing each other
    end with one ``IntegrityError`` on the unique (channel, external_id), which the channel
    retries.
    """
    user = await session.scalar(
        select(User)
        .join(ChannelIdentity, ChannelIdentity.user_id == User.id)
        .where(ChannelIdentity.channel == channel, ChannelIdentity.external_id == external_id)
    )
    if user is not None:
        return user
    username = _username(channel, external_id)
    if await session.scalar(select(User.id).where(User.username == username)):
        username = f"{username[:27]}-{secrets.token_hex(2)}"
    user = User(
        username=username,
        display_name=_display_name(channel, external_id, profile_name),
        password_hash=None,
        role=Role.user,
    )
    session.add(user)
    await session.flush()
    session.add(ChannelIdentity(user_id=user.id, channel=channel, external_id=external_id))
    await session.flush()
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
