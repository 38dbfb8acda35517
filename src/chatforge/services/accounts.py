"""Accounts: registration, login, profiles and the admin's user management (A1-A3, A5)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, bindparam, func, inspect, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from chatforge.auth.passwords import PasswordHasher
from chatforge.auth.throttle import LoginThrottle
from chatforge.auth.tokens import TokenClaims
from chatforge.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from chatforge.services import audit
from chatforge.services.policy import require_admin, require_role
from chatforge.store.database import Database
from chatforge.store.models import Role, User
from chatforge.store.write_lane import Statements

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
DISPLAY_NAME_MAX = 64


def normalize_username(username: str) -> str:
    """Usernames are case-insensitive: ``Alice`` and ``alice`` are one account."""
    return username.strip().lower()


def check_username(username: str) -> str:
    name = normalize_username(username)
    if not USERNAME_RE.fullmatch(name):
        raise Invalid(
            "Username must be 3-32 characters: letters, digits, '.', '_' or '-'.",
            code="invalid_username",
        )
    return name


def check_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise Invalid(
            f"Password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters long.",
            code="invalid_password",
        )
    return password


def check_display_name(display_name: str) -> str:
    name = " ".join(display_name.split())
    if not 1 <= len(name) <= DISPLAY_NAME_MAX or any(ord(c) < 32 for c in name):
        raise Invalid(
            f"Display name must be 1-{DISPLAY_NAME_MAX} printable characters.",
            code="invalid_display_name",
        )
    return name


@dataclass(frozen=True, slots=True)
class UserPage:
    users: list[User]
    total: int


class AccountService:
    def __init__(self, db: Database, hasher: PasswordHasher, throttle: LoginThrottle) -> None:
        self.db = db
        self.hasher = hasher
        self.throttle = throttle

    async def register(
        self,
        username: str,
        password: str,
        display_name: str | None = None,
        *,
        role: Role = Role.user,
    ) -> User:
        """Create an account; raises ``Invalid`` for bad fields and ``Conflict`` if taken."""
        name = check_username(username)
        shown = check_display_name(display_name) if display_name else name
        password_hash = await self.hasher.hash(check_password(password))
        try:
            async with self.db.write() as session:
                if await session.scalar(select(User.id).where(User.username == name)):
                    raise Conflict("That username is taken.", code="username_taken")
                user = User(
                    username=name, display_name=shown, password_hash=password_hash, role=role
                )
                session.add(user)
                await session.flush()
                audit.record(
                    session,
                    actor_id=user.id,
                    action="user.register",
                    target_type="user",
                    target_id=user.id,
                    role=role.value,
                )
        except IntegrityError as exc:
            # Two registrations raced past the check above; the unique index decided.
            raise Conflict("That username is taken.", code="username_taken") from exc
        return user

    async def authenticate(self, username: str, password: str, ip: str) -> User:
        """Check credentials; raises ``Unauthenticated`` or ``RateLimited`` (too many failures)."""
        name = normalize_username(username)
        await self.throttle.check(name, ip)
        async with self.db.read() as session:
            user = await session.scalar(select(User).where(User.username == name))
        valid = await self.hasher.verify(password, user.password_hash if user else None)
        if user is None or not valid:
            await self.throttle.record_failure(name, ip)
            raise Unauthenticated("Wrong username or password.", code="bad_credentials")
        if not user.is_active:
            raise Unauthenticated("This account is deactivated.", code="account_inactive")
        await self.throttle.record_success(name)
        return user

    async def user_for_token(self, claims: TokenClaims) -> User:
        """The live user a token names; raises ``Unauthenticated`` if it no longer holds."""
        # Every authenticated request and handshake comes here: one hop to the read lane.
        user = await self.db.fetch(functools.partial(_user_by_id, claims.user_id))
        if user is None or not user.is_active or user.token_version != claims.version:
            raise Unauthenticated(
                "Your session is no longer valid; log in again.", code="session_revoked"
            )
        return user

    async def update_profile(self, actor: User, *, display_name: str) -> User:
        shown = check_display_name(display_name)
        async with self.db.write() as session:
            user = await self._get(session, actor.id)
            user.display_name = shown
        return user

    async def change_password(self, actor: User, *, current: str, new: str) -> User:
        """Change the actor's own password; other sessions of theirs stop working."""
        check_password(new)
        async with self.db.read() as session:
            stored = await self._get(session, actor.id)
        if not await self.hasher.verify(current, stored.password_hash):
            raise Invalid("The current password is wrong.", code="wrong_password")
        new_hash = await self.hasher.hash(new)
        async with self.db.write() as session:
            user = await self._get(session, actor.id)
            user.password_hash = new_hash
            user.token_version += 1
            audit.record(
                session,
                actor_id=actor.id,
                action="user.change_password",
                target_type="user",
                target_id=actor.id,
            )
        return user

    # -- administration -------------------------------------------------------------------

    async def list_users(
        self, actor: User, *, query: str = "", offset: int = 0, limit: int = 50
    ) -> UserPage:
        require_admin(actor)
        condition: ColumnElement[bool] = true()
        if query:
            # icontains: LIKE ignores case on SQLite but not on PostgreSQL.
            condition = or_(
                User.username.icontains(query, autoescape=True),
                User.display_name.icontains(query, autoescape=True),
            )
        async with self.db.read() as session:
            total = await session.scalar(select(func.count()).select_from(User).where(condition))
            rows = await session.scalars(
                select(User).where(condition).order_by(User.id).offset(offset).limit(limit)
            )
            return UserPage(users=list(rows), total=total or 0)

    async def get_user(self, actor: User, user_id: int) -> User:
        if actor.id != user_id:
            require_admin(actor)
        async with self.db.read() as session:
            return await self._get(session, user_id)

    async def update_user(
        self, actor: User, user_id: int, *, role: Role | None = None, active: bool | None = None
    ) -> User:
        """Change a user's role or (de)activate them; deactivation ends their sessions at once."""
        require_admin(actor)
        if actor.id == user_id and role is not None and role is not actor.role:
            raise Forbidden("You cannot change your own role.", code="own_role")
        if actor.id == user_id and active is False:
            raise Forbidden("You cannot deactivate yourself.", code="own_account")
        async with self.db.write() as session:
            user = await self._get(session, user_id)
            if role is not None and role is not user.role:
                audit.record(
                    session,
                    actor_id=actor.id,
                    action="user.role",
                    target_type="user",
                    target_id=user.id,
                    old=user.role.value,
                    new=role.value,
                )
                user.role = role
            if active is not None and active != user.is_active:
                user.is_active = active
                if not active:
                    user.token_version += 1
                audit.record(
                    session,
                    actor_id=actor.id,
                    action="user.activate" if active else "user.deactivate",
                    target_type="user",
                    target_id=user.id,
                )
        return user

    async def reset_password(self, actor: User, user_id: int, *, new_password: str) -> User:
        """Set a new password for someone (admin); their existing sessions end."""
        require_admin(actor)
        new_hash = await self.hasher.hash(check_password(new_password))
        async with self.db.write() as session:
            user = await self._get(session, user_id)
            user.password_hash = new_hash
            user.token_version += 1
            audit.record(
                session,
                actor_id=actor.id,
                action="user.reset_password",
                target_type="user",
                target_id=user.id,
            )
        return user

    async def moderators(self, actor: User) -> list[User]:
        """Active moderators and admins (for moderators choosing whom to transfer to)."""
        require_role(actor, Role.moderator)
        async with self.db.read() as session:
            rows = await session.scalars(
                select(User)
                .where(User.role.in_([Role.moderator, Role.admin]), User.is_active.is_(True))
                .order_by(User.display_name)
            )
            return list(rows)

    async def display_names(self, user_ids: set[int]) -> dict[int, str]:
        """Display names by id, for showing who wrote what."""
        if not user_ids:
            return {}
        async with self.db.read() as session:
            rows = await session.execute(
                select(User.id, User.display_name).where(User.id.in_(user_ids))
            )
            return dict(rows.all())

    async def ensure_user(self, username: str, password: str, role: Role) -> tuple[User, bool]:
        """Create the account unless it exists (CLI and demo data); returns (user, created)."""
        name = check_username(username)
        async with self.db.read() as session:
            existing = await session.scalar(select(User).where(User.username == name))
        if existing is not None:
            return existing, False
        return await self.register(name, password, role=role), True

    @staticmethod
    async def _get(session: AsyncSession, user_id: int) -> User:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound(f"No user {user_id}.", code="user_not_found")
        return user


_USERS = User.__table__
_USER_BY_ID = select(*_USERS.columns).where(_USERS.c.id == bindparam("id"))
_USER_FIELDS = tuple(inspect(User).get_property_by_column(c).key for c in _USERS.columns)


def _user_by_id(user_id: int, statements: Statements) -> User | None:
    """The account, as a detached ``User`` with every column loaded (as a closed session
    leaves it), or None."""
    found = statements.rows(_USER_BY_ID, {"id": user_id})
    if not found:
        return None
    user = User(**dict(zip(_USER_FIELDS, found[0], strict=True)))
    make_transient_to_detached(user)
    return user
