"""The features page: what each role can do, in words an admin can edit (A4)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select

from chatforge.errors import Invalid
from chatforge.services import audit
from chatforge.services.policy import require_admin
from chatforge.store.database import Database
from chatforge.store.models import FeatureText, Role, User
from chatforge.store.types import utcnow

BODY_MAX = 10_000

DEFAULT_TEXTS: dict[Role, str] = {
    Role.user: (
        "Open a support conversation: pick a topic and a moderator answers you live.\n"
        "Join live sessions with the link your instructor shares.\n"
        "Rate a conversation when it is over, and download your own data from your profile."
    ),
    Role.moderator: (
        "Answer support conversations: claim one from the live queue and chat in real time.\n"
        "Host live sessions: create a room, share its link, moderate the chat."
    ),
    Role.annotator: (
        "Review finished conversations, rate them, correct messages for training and export "
        "datasets in the formats trainers use."
    ),
    Role.admin: (
        "Manage topics and users: add, edit and deactivate topics; assign roles; deactivate "
        "accounts; reset passwords. Edit the text of this page."
    ),
}


class FeatureService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def texts(self) -> dict[Role, str]:
        """The text for every role, falling back to the built-in default where none is stored."""
        async with self.db.read() as session:
            stored = {row.role: row.body for row in await session.scalars(select(FeatureText))}
        return {role: stored.get(role, DEFAULT_TEXTS[role]) for role in Role}

    async def update(self, actor: User, texts: Mapping[Role, str]) -> None:
        """Replace the text of the given roles (admin), all or nothing."""
        require_admin(actor)
        clean = {role: body.strip() for role, body in texts.items()}
        for body in clean.values():
            if len(body) > BODY_MAX:
                raise Invalid(f"The text must be at most {BODY_MAX} characters.", code="too_long")
        async with self.db.write() as session:
            for role, body in clean.items():
                row = await session.get(FeatureText, role)
                if row is None:
                    session.add(FeatureText(role=role, body=body, updated_by_id=actor.id))
                else:
                    row.body, row.updated_at, row.updated_by_id = body, utcnow(), actor.id
                audit.record(
                    session,
                    actor_id=actor.id,
                    action="features.update",
                    target_type="role",
                    target_id=None,
                    role=role.value,
                )
