"""Who may do what: role checks shared by every service."""

from __future__ import annotations

from chatforge.errors import Forbidden
from chatforge.store.models import Role, User

STAFF = frozenset({Role.moderator, Role.annotator, Role.admin})


def require_role(actor: User, *roles: Role) -> None:
    """Raise ``Forbidden`` unless ``actor`` has one of ``roles`` (admins may do everything)."""
    if actor.role is Role.admin or actor.role in roles:
        return
    raise Forbidden("Your role does not allow this.")


def require_admin(actor: User) -> None:
    require_role(actor, Role.admin)
