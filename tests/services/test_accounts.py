"""AccountService: the account rules, and the audit records they leave."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import inspect, select

from chatforge.context import AppContext
from chatforge.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited, Unauthenticated
from chatforge.store.models import AuditRecord, Role, User
from tests.factories import PASSWORD, make_user

TIMEOUT = 10  # seconds: the one timeout unit of the async tests here


async def audit_log(ctx: AppContext) -> list[tuple[str, int | None, int | None, dict[str, Any]]]:
    async with ctx.db.read() as session:
        rows = await session.scalars(select(AuditRecord).order_by(AuditRecord.id))
        return [(r.action, r.actor_id, r.target_id, r.detail) for r in rows]


async def test_register_normalizes_and_records_the_registration(ctx: AppContext) -> None:
    user = await ctx.accounts.register("  MixedCase ", PASSWORD, " Mixed \n Case ")

    assert (user.username, user.display_name, user.role) == ("mixedcase", "Mixed Case", Role.user)
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert await audit_log(ctx) == [("user.register", user.id, user.id, {"role": "user"})]


async def test_simultaneous_registrations_of_one_name_create_one_account(ctx: AppContext) -> None:
    async with asyncio.timeout(TIMEOUT):
        results = await asyncio.gather(
            *(ctx.accounts.register("racer", PASSWORD) for _ in range(4)), return_exceptions=True
        )

    created = [r for r in results if isinstance(r, User)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(created) == 1
    assert len(refused) == 3
    assert all(r.code == "username_taken" for r in refused)


@pytest.mark.parametrize(
    ("username", "password", "code"),
    [
        ("ab", PASSWORD, "invalid_username"),
        ("has space", PASSWORD, "invalid_username"),
        ("fine_name", "short", "invalid_password"),
    ],
)
async def test_register_refuses_bad_fields(
    ctx: AppContext, username: str, password: str, code: str
) -> None:
    with pytest.raises(Invalid) as raised:
        await ctx.accounts.register(username, password)

    assert raised.value.code == code
    assert await audit_log(ctx) == []


async def test_authenticate_checks_the_password(ctx: AppContext) -> None:
    user = await make_user(ctx)

    assert (await ctx.accounts.authenticate(user.username.upper(), PASSWORD, "10.0.0.1")).id == (
        user.id
    )
    with pytest.raises(Unauthenticated) as wrong:
        await ctx.accounts.authenticate(user.username, "nope nope nope", "10.0.0.1")
    with pytest.raises(Unauthenticated) as unknown:
        await ctx.accounts.authenticate("ghost", PASSWORD, "10.0.0.1")

    assert wrong.value.code == unknown.value.code == "bad_credentials"
    assert wrong.value.message == unknown.value.message


async def test_a_username_locks_whatever_address_the_failures_come_from(ctx: AppContext) -> None:
    user = await make_user(ctx)
    for i in range(10):
        with pytest.raises(Unauthenticated):
            await ctx.accounts.authenticate(user.username, "wrong password", f"10.0.0.{i}")

    with pytest.raises(RateLimited) as raised:
        await ctx.accounts.authenticate(user.username, PASSWORD, "10.9.9.9")

    assert raised.value.retry_after >= 1


async def test_an_address_lock_leaves_other_addresses_alone(ctx: AppContext) -> None:
    user = await make_user(ctx)
    for i in range(30):
        with pytest.raises(Unauthenticated):
            await ctx.accounts.authenticate(f"ghost{i % 5}", "wrong password", "10.0.0.1")

    with pytest.raises(RateLimited):
        await ctx.accounts.authenticate(user.username, PASSWORD, "10.0.0.1")
    assert (await ctx.accounts.authenticate(user.username, PASSWORD, "10.0.0.2")).id == user.id


async def test_deactivation_bumps_the_token_version_and_is_audited(ctx: AppContext) -> None:
    admin, user = await make_user(ctx, Role.admin), await make_user(ctx)
    claims = ctx.tokens.read(ctx.tokens.issue(user.id, user.token_version))

    updated = await ctx.accounts.update_user(admin, user.id, active=False)

    assert updated.token_version == user.token_version + 1
    with pytest.raises(Unauthenticated):
        await ctx.accounts.user_for_token(claims)
    assert (await audit_log(ctx))[-1] == ("user.deactivate", admin.id, user.id, {})


async def test_the_account_behind_a_token_is_read_afresh_as_a_session_would_leave_it(
    ctx: AppContext,
) -> None:
    user = await make_user(ctx, Role.moderator)
    claims = ctx.tokens.read(ctx.tokens.issue(user.id, user.token_version))
    await ctx.accounts.update_profile(user, display_name="Renamed")

    found = await ctx.accounts.user_for_token(claims)

    fields = ("id", "username", "role", "is_active", "token_version", "created_at")
    assert [getattr(found, f) for f in fields] == [getattr(user, f) for f in fields]
    assert found.display_name == "Renamed"
    # Detached, not new: a session that takes it up again updates the row, it inserts none.
    assert inspect(found).detached
    async with ctx.db.write() as session:
        session.add(found)
        found.display_name = "Renamed again"
    async with ctx.db.read() as session:
        names = (await session.scalars(select(User.display_name).where(User.id >= user.id))).all()
    assert names == ["Renamed again"]


async def test_role_change_is_audited_with_old_and_new(ctx: AppContext) -> None:
    admin, user = await make_user(ctx, Role.admin), await make_user(ctx)

    await ctx.accounts.update_user(admin, user.id, role=Role.annotator)
    await ctx.accounts.update_user(admin, user.id, role=Role.annotator)  # no change, no record

    log = await audit_log(ctx)
    assert log[-1] == ("user.role", admin.id, user.id, {"old": "user", "new": "annotator"})
    assert [entry[0] for entry in log].count("user.role") == 1


async def test_admins_cannot_lock_themselves_out(ctx: AppContext) -> None:
    admin = await make_user(ctx, Role.admin)

    with pytest.raises(Forbidden) as own_role:
        await ctx.accounts.update_user(admin, admin.id, role=Role.user)
    with pytest.raises(Forbidden) as own_account:
        await ctx.accounts.update_user(admin, admin.id, active=False)

    assert (own_role.value.code, own_account.value.code) == ("own_role", "own_account")
    # Setting their own role to what it is already is harmless.
    assert (await ctx.accounts.update_user(admin, admin.id, role=Role.admin)).role is Role.admin


@pytest.mark.parametrize("role", [Role.user, Role.moderator, Role.annotator])
async def test_only_admins_manage_accounts(ctx: AppContext, role: Role) -> None:
    actor, target = await make_user(ctx, role), await make_user(ctx)

    with pytest.raises(Forbidden):
        await ctx.accounts.list_users(actor)
    with pytest.raises(Forbidden):
        await ctx.accounts.get_user(actor, target.id)
    with pytest.raises(Forbidden):
        await ctx.accounts.update_user(actor, target.id, role=Role.admin)
    with pytest.raises(Forbidden):
        await ctx.accounts.reset_password(actor, target.id, new_password="whatever123")


async def test_unknown_users_are_not_found(ctx: AppContext) -> None:
    admin = await make_user(ctx, Role.admin)

    with pytest.raises(NotFound):
        await ctx.accounts.get_user(admin, 4242)
    with pytest.raises(NotFound):
        await ctx.accounts.update_user(admin, 4242, active=False)


async def test_ensure_user_leaves_an_existing_account_alone(ctx: AppContext) -> None:
    first, created = await ctx.accounts.ensure_user("Seeded", PASSWORD, Role.moderator)
    again, created_again = await ctx.accounts.ensure_user("seeded", "other password", Role.admin)

    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert again.role is Role.moderator
    assert (await ctx.accounts.authenticate("seeded", PASSWORD, "10.0.0.1")).id == first.id
