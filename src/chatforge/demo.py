"""Demo data: the topics of the original support-chat design and one account per role."""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass

from chatforge.context import AppContext
from chatforge.errors import Conflict
from chatforge.store.models import Role, User

DEMO_TOPICS: tuple[tuple[str, str], ...] = (
    ("Create Workspace", "Setting up a new cloud workspace"),
    ("Invoke Terminal", "Opening and using a terminal session"),
    ("Git", "Git commands"),
    ("Open Workspace", "Reopening an existing workspace"),
    ("Javascript", "The JavaScript language"),
    ("Jinja2", "The Jinja templating language"),
    ("Wireframe", "UX wireframing"),
)

DEMO_ACCOUNTS: tuple[tuple[str, Role], ...] = (
    ("admin", Role.admin),
    ("moderator", Role.moderator),
    ("annotator", Role.annotator),
    ("user", Role.user),
)


@dataclass(frozen=True, slots=True)
class DemoAccount:
    username: str
    role: Role
    password: str | None  # None when the account existed already (its password is unchanged)


async def seed_demo(ctx: AppContext) -> list[DemoAccount]:
    """Create what is missing of the demo data; existing records are left as they are."""
    accounts: list[DemoAccount] = []
    admin: User | None = None
    for username, role in DEMO_ACCOUNTS:
        password = secrets.token_urlsafe(9)
        user, created = await ctx.accounts.ensure_user(username, password, role)
        accounts.append(DemoAccount(username, role, password if created else None))
        if role is Role.admin:
            admin = user
    assert admin is not None
    existing = {topic.name for topic in await ctx.topics.list(include_inactive=True)}
    for name, description in DEMO_TOPICS:
        if name not in existing:
            # Another process may seed at the same time; its topic is as good as ours.
            with contextlib.suppress(Conflict):
                await ctx.topics.create(admin, name=name, description=description)
    return accounts
