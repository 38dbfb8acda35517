"""The labels annotators put on conversations; admins manage the list (N2)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from chatforge.errors import Conflict, Invalid, NotFound
from chatforge.services import audit
from chatforge.services.policy import require_admin
from chatforge.store.annotation_models import AnnotationLabel
from chatforge.store.database import Database
from chatforge.store.models import User

NAME_MAX, DESCRIPTION_MAX = 64, 200


def check_label_name(name: str) -> str:
    clean = " ".join(name.split())
    if not 1 <= len(clean) <= NAME_MAX:
        raise Invalid(f"A label name has 1-{NAME_MAX} characters.", code="invalid_label_name")
    return clean


class LabelService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, *, include_inactive: bool = False) -> list[AnnotationLabel]:
        """Labels by name; only the active ones unless ``include_inactive``."""
        query = select(AnnotationLabel).order_by(AnnotationLabel.name)
        if not include_inactive:
            query = query.where(AnnotationLabel.is_active.is_(True))
        async with self.db.read() as session:
            return list(await session.scalars(query))

    async def create(self, actor: User, name: str, description: str = "") -> AnnotationLabel:
        """Add a label (admin). Raises ``Invalid`` for a bad name, ``Conflict`` if it exists."""
        require_admin(actor)
        clean = check_label_name(name)
        description = description.strip()
        if len(description) > DESCRIPTION_MAX:
            raise Invalid(
                f"A label description has at most {DESCRIPTION_MAX} characters.",
                code="invalid_label_description",
            )
        async with self.db.write() as session:
            if await session.scalar(
                select(AnnotationLabel.id).where(AnnotationLabel.name == clean)
            ):
                raise Conflict(f"The label “{clean}” exists already.", code="label_exists")
            label = AnnotationLabel(name=clean, description=description)
            session.add(label)
            await session.flush()
            audit.record(
                session,
                actor_id=actor.id,
                action="label.created",
                target_type="annotation_label",
                target_id=label.id,
                name=clean,
            )
        return label

    async def set_active(self, actor: User, label_id: int, active: bool) -> AnnotationLabel:
        """Deactivate a label (it stays on past annotations) or reactivate it (admin)."""
        require_admin(actor)
        async with self.db.write() as session:
            label = await _get(session, label_id)
            label.is_active = active
            audit.record(
                session,
                actor_id=actor.id,
                action="label.activated" if active else "label.deactivated",
                target_type="annotation_label",
                target_id=label.id,
                name=label.name,
            )
        return label


async def _get(session: AsyncSession, label_id: int) -> AnnotationLabel:
    label = await session.get(AnnotationLabel, label_id)
    if label is None:
        raise NotFound(f"No label {label_id}.", code="label_not_found")
    return label
