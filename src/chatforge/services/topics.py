"""Topics that support conversations are filed under (A3)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.errors import Conflict, Invalid, NotFound
from chatforge.services import audit
from chatforge.services.policy import require_admin
from chatforge.store.database import Database
from chatforge.store.models import Conversation, Topic, User

NAME_MAX, DESCRIPTION_MAX = 80, 500


def check_name(name: str) -> str:
    clean = " ".join(name.split())
    if not 1 <= len(clean) <= NAME_MAX:
        raise Invalid(f"Topic name must be 1-{NAME_MAX} characters.", code="invalid_topic_name")
    return clean


def check_description(description: str) -> str:
    clean = description.strip()
    if len(clean) > DESCRIPTION_MAX:
        raise Invalid(
            f"Topic description must be at most {DESCRIPTION_MAX} characters.",
            code="invalid_topic_description",
        )
    return clean


class TopicService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, *, include_inactive: bool = False) -> list[Topic]:
        query = select(Topic).order_by(Topic.name)
        if not include_inactive:
            query = query.where(Topic.is_active.is_(True))
        async with self.db.read() as session:
            return list(await session.scalars(query))

    async def get(self, topic_id: int) -> Topic:
        async with self.db.read() as session:
            return await self._get(session, topic_id)

    async def create(self, actor: User, *, name: str, description: str = "") -> Topic:
        """Add a topic (admin); ``Conflict`` if the name exists."""
        require_admin(actor)
        topic = Topic(name=check_name(name), description=check_description(description))
        try:
            async with self.db.write() as session:
                await self._check_unique(session, topic.name)
                session.add(topic)
                await session.flush()
                audit.record(
                    session,
                    actor_id=actor.id,
                    action="topic.create",
                    target_type="topic",
                    target_id=topic.id,
                    name=topic.name,
                )
        except IntegrityError as exc:
            raise Conflict("A topic with that name exists.", code="topic_exists") from exc
        return topic

    async def update(
        self,
        actor: User,
        topic_id: int,
        *,
        name: str | None = None,
        description: str | None = None,
        active: bool | None = None,
    ) -> Topic:
        """Rename, describe, deactivate or reactivate a topic (admin)."""
        require_admin(actor)
        changes: dict[str, object] = {}
        try:
            async with self.db.write() as session:
                topic = await self._get(session, topic_id)
                if name is not None and check_name(name) != topic.name:
                    await self._check_unique(session, check_name(name), exclude=topic.id)
                    topic.name = changes["name"] = check_name(name)
                if description is not None:
                    topic.description = changes["description"] = check_description(description)
                if active is not None and active != topic.is_active:
                    topic.is_active = changes["active"] = active
                if changes:
                    audit.record(
                        session,
                        actor_id=actor.id,
                        action="topic.update",
                        target_type="topic",
                        target_id=topic.id,
                        **changes,
                    )
        except IntegrityError as exc:
            raise Conflict("A topic with that name exists.", code="topic_exists") from exc
        return topic

    async def delete(self, actor: User, topic_id: int) -> None:
        """Delete an unused topic (admin); a topic in use can only be deactivated."""
        require_admin(actor)
        async with self.db.write() as session:
            topic = await self._get(session, topic_id)
            used = await session.scalar(
                select(Conversation.id).where(Conversation.topic_id == topic_id).limit(1)
            )
            if used is not None:
                raise Conflict(
                    "This topic has conversations; deactivate it instead.", code="topic_in_use"
                )
            await session.delete(topic)
            audit.record(
                session,
                actor_id=actor.id,
                action="topic.delete",
                target_type="topic",
                target_id=topic_id,
                name=topic.name,
            )

    async def in_use(self, topic_id: int) -> bool:
        async with self.db.read() as session:
            used = await session.scalar(
                select(Conversation.id).where(Conversation.topic_id == topic_id).limit(1)
            )
        return used is not None

    @staticmethod
    async def _check_unique(session: AsyncSession, name: str, exclude: int | None = None) -> None:
        query = select(Topic.id).where(Topic.name == name)
        if exclude is not None:
            query = query.where(Topic.id != exclude)
        if await session.scalar(query) is not None:
            raise Conflict("A topic with that name exists.", code="topic_exists")

    @staticmethod
    async def _get(session: AsyncSession, topic_id: int) -> Topic:
        topic = await session.get(Topic, topic_id)
        if topic is None:
            raise NotFound(f"No topic {topic_id}.", code="topic_not_found")
        return topic
