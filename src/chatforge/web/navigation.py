"""The navigation bar: which pages each role sees (A2)."""

from __future__ import annotations

from dataclasses import dataclass

from chatforge.store.models import Role, User


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    path: str
    roles: frozenset[Role]


EVERYONE = frozenset(Role)

NAV_ITEMS: tuple[NavItem, ...] = (
    NavItem("Home", "/", EVERYONE),
    NavItem("Support", "/support", frozenset({Role.user, Role.admin})),
    NavItem("Support queue", "/moderate", frozenset({Role.moderator, Role.admin})),
    NavItem("Sessions", "/sessions", EVERYONE),
    NavItem("Annotation", "/annotate", frozenset({Role.annotator, Role.admin})),
    NavItem("Bots", "/bots", frozenset({Role.moderator, Role.admin})),
    NavItem("Topics", "/admin/topics", frozenset({Role.admin})),
    NavItem("Users", "/admin/users", frozenset({Role.admin})),
    NavItem("Labels", "/admin/labels", frozenset({Role.admin})),
    NavItem("Features", "/features", EVERYONE),
    NavItem("Profile", "/profile", EVERYONE),
)


def nav_for(user: User | None) -> list[NavItem]:
    if user is None:
        return [NavItem("Features", "/features", EVERYONE)]
    return [item for item in NAV_ITEMS if user.role in item.roles]
