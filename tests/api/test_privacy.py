"""A6: an admin erases a user and nothing of theirs is left; a user downloads their own data."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from sqlalchemy import select, text
from starlette.websockets import WebSocketDisconnect

from chatforge.api.deps import SESSION_COOKIE
from chatforge.channels.base import InboundMessage
from chatforge.context import AppContext
from chatforge.services.privacy import ERASED, Scrubber
from chatforge.store.models import AuditRecord, Base, Message, Rating, Role, User
from tests.conftest import Api
from tests.factories import make_topic

CANARY = "Qzx9canary"
PHONE = "+27820007351"
PHONE_DIGITS = PHONE[1:]


def subject_with_data(api: Api) -> tuple[User, dict[str, int]]:
    """A WhatsApp user whose name, messages, bot state and ratings all carry the canary."""
    ctx = api.ctx
    admin, moderator = api.user(Role.admin), api.user(Role.moderator)

    async def build(ctx: AppContext) -> tuple[User, dict[str, int]]:
        delivery = await ctx.channels.receive(
            InboundMessage(
                channel="whatsapp",
                message_id="SMcanary1",
                sender=f"whatsapp:{PHONE}",
                text=f"{CANARY} please",
                profile_name=f"Zed {CANARY}",
            )
        )
        assert delivery.user_id is not None
        async with ctx.db.read() as session:
            user = await session.get(User, delivery.user_id)
        assert user is not None
        await ctx.web_chat.send(user, f"python easy {CANARY}", "web-1")
        topic = await make_topic(ctx, admin)
        support = (await ctx.support.open(user, topic.id)).conversation.id
        await ctx.support.claim(moderator, support)
        await ctx.messages.post(user, support, f"my secret is {CANARY}")
        await ctx.messages.post(moderator, support, "Thanks, noted.")
        await ctx.messages.post(moderator, support, f"Bye Zed {CANARY}")
        await ctx.support.end(user, support)
        await ctx.support.rate(user, support, Rating.poor, f"{CANARY} was rude")
        room = (await ctx.sessions.create(moderator, "Class", None)).id
        await ctx.sessions.join(user, room)
        posted = await ctx.messages.post(user, room, f"room says {CANARY}")
        await ctx.messages.post(user, room, f"whisper {CANARY}", recipient_id=moderator.id)
        await ctx.reactions.toggle(user, room, posted.message_id, "👍")
        await ctx.hands.raise_hand(user, room)
        await ctx.moderation.mute(
            moderator, room, user.id, duration_minutes=5, reason=f"{CANARY} spam"
        )
        await ctx.moderation.delete_message(moderator, room, posted.message_id)
        return user, {"support": support, "room": room, "moderator": moderator.id}

    return api.call(build, ctx)


async def dump_every_table(ctx: AppContext) -> list[tuple[str, str]]:
    """(table, text) for every value of every table in the database file, including those
    outside the models (the full-text index and its shadow tables, read as raw bytes)."""
    found: list[tuple[str, str]] = []
    async with ctx.db.read() as session:
        names = list(
            await session.scalars(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
        )
        assert {t.name for t in Base.metadata.sorted_tables} <= set(names)
        for name in names:
            for row in (await session.execute(text(f'SELECT * FROM "{name}"'))).all():
                for value in row:
                    if isinstance(value, bytes):
                        found.append((name, value.decode("utf-8", "replace")))
                    elif value is not None:
                        found.append((name, str(value)))
    return found


def traces(texts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    needles = (CANARY.lower(), PHONE_DIGITS)
    return [(table, text) for table, text in texts if any(n in text.lower() for n in needles)]


def test_erasure_leaves_no_trace_and_ends_every_session(api: Api) -> None:
    subject, ids = subject_with_data(api)
    admin = api.user(Role.admin)
    # Before: the canary is everywhere the test says it is.
    before = {table for table, _ in traces(api.call(dump_every_table, api.ctx))}
    assert {"users", "messages", "events", "channel_identities", "conversations", "mutes"} <= before
    assert {"bot_interactions", "audit_log"} <= before

    shown = api.client.get(
        "/api/datasets/export", params={"format": "json"}, headers=api.auth(admin)
    )
    assert CANARY in shown.text  # so its absence afterwards means something

    token = api.token(subject)
    moderator_auth = api.auth(api.call(api.ctx.accounts.get_user, admin, ids["moderator"]))
    with api.client.websocket_connect("/ws", headers={"Authorization": f"Bearer {token}"}) as ws:
        assert ws.receive_json()["type"] == "hello"
        response = api.client.post(f"/api/users/{subject.id}/erase", headers=api.auth(admin))
        assert response.status_code == 200, response.text
        assert response.json()["user_id"] == subject.id
        frame = ws.receive_json()
        while frame["type"] != "session_revoked":
            frame = ws.receive_json()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1008

    left = traces(api.call(dump_every_table, api.ctx))
    assert not left, "\n".join(map(str, left))

    # Old token and cookie are refused; the account is deactivated and renamed.
    assert (
        api.client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )
    api.client.cookies.set(SESSION_COOKIE, token)
    page = api.client.get("/profile", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    api.client.cookies.clear()
    erased = api.client.get(f"/api/users/{subject.id}", headers=api.auth(admin)).json()
    assert erased["username"] == f"erased-{subject.id}" and erased["is_active"] is False

    # Conversations keep their shape: the messages are there, their text is not.
    history = api.client.get(
        f"/api/conversations/{ids['support']}/messages", headers=moderator_auth
    ).json()
    bodies = [item["body"] for item in history]
    assert ERASED in bodies and "Thanks, noted." in bodies
    assert f"Bye erased-{subject.id}" in bodies  # others' words stay, without the name

    # No export shows it either: the session's, nor the training datasets.
    for fmt in ("openai-jsonl", "sharegpt", "json", "csv"):
        dataset = api.client.get(
            "/api/datasets/export", params={"format": fmt}, headers=api.auth(admin)
        )
        assert dataset.status_code == 200, dataset.text
        assert CANARY.lower() not in dataset.text.lower()
        assert PHONE_DIGITS not in dataset.text
    for fmt in ("json", "csv", "txt"):
        export = api.client.get(
            f"/api/conversations/{ids['room']}/export",
            params={"format": fmt, "include_private": "true"},
            headers=moderator_auth,
        )
        assert export.status_code == 200
        assert CANARY.lower() not in export.text.lower()
        assert "room says" not in export.text

    async def erasure_records(ctx: AppContext) -> list[AuditRecord]:
        async with ctx.db.read() as session:
            rows = await session.scalars(
                select(AuditRecord).where(AuditRecord.action == "user.erase")
            )
            return list(rows)

    [record] = api.call(erasure_records, api.ctx)
    assert (record.actor_id, record.target_id) == (admin.id, subject.id)
    assert record.detail["messages"] >= 4


def test_erasure_is_for_admins_only_and_not_of_yourself(api: Api) -> None:
    admin, victim = api.user(Role.admin), api.user()
    for role in (Role.user, Role.moderator, Role.annotator):
        response = api.client.post(
            f"/api/users/{victim.id}/erase", headers=api.auth(api.user(role))
        )
        assert response.status_code == 403
    mine = api.client.post(f"/api/users/{admin.id}/erase", headers=api.auth(admin))
    assert (mine.status_code, mine.json()["code"]) == (403, "own_account")
    missing = api.client.post("/api/users/999999/erase", headers=api.auth(admin))
    assert missing.status_code == 404
    assert api.fresh(victim).is_active


def test_admin_erases_from_the_user_page_after_confirming(api: Api) -> None:
    admin, victim = api.user(Role.admin), api.user()
    api.browse_as(admin)
    page = api.client.get(f"/admin/users/{victim.id}")
    assert f'href="/admin/users/{victim.id}/erase"' in page.text
    confirm = api.client.get(f"/admin/users/{victim.id}/erase")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    done = api.form(f"/admin/users/{victim.id}/erase")
    assert done.status_code == 303
    assert api.fresh(victim).username == f"erased-{victim.id}"


def test_a_user_downloads_all_of_their_own_data(api: Api) -> None:
    subject, ids = subject_with_data(api)
    other = api.user()
    response = api.client.get("/api/me/export", headers=api.auth(subject))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert "attachment" in response.headers["content-disposition"]
    data: dict[str, Any] = response.json()
    assert data["profile"]["id"] == subject.id and CANARY in data["profile"]["display_name"]
    assert data["channel_identities"] == [
        {
            "channel": "whatsapp",
            "external_id": PHONE,
            "created_at": data["channel_identities"][0]["created_at"],
        }
    ]
    assert data["bot_states"] and data["bot_interactions"]
    assert [r["emoji"] for r in data["reactions"]] == ["👍"]
    conversations = {c["id"]: c for c in data["conversations"]}
    assert {ids["support"], ids["room"]} <= conversations.keys()
    support = conversations[ids["support"]]
    assert support["your_rating"] == {"rating": "poor", "comment": f"{CANARY} was rude"}
    assert [m["body"] for m in support["your_messages"]] == [f"my secret is {CANARY}"]
    # Only their own words: the moderator's reply is not theirs to download.
    assert "Thanks, noted." not in response.text
    kinds = {c["kind"] for c in data["conversations"]}
    assert kinds == {"support", "session", "bot"}

    # The profile page links the same document; someone else's download holds none of it.
    api.browse_as(subject)
    assert 'href="/profile/export"' in api.client.get("/profile").text
    assert api.client.get("/profile/export").json()["profile"]["id"] == subject.id
    api.client.cookies.clear()
    theirs = api.client.get("/api/me/export", headers=api.auth(other)).text
    assert CANARY not in theirs and api.client.get("/api/me/export").status_code == 401


def test_scrubber_replaces_whole_texts_and_names_inside_json() -> None:
    scrub = Scrubber.build({"secret words", "ok"}, {"Zed Qzx", "ab"}, "erased-7")
    value = {
        "body": "secret words",
        "quote": "you said “secret words”",
        "list": ["hi zed qzx!", 3, None],
        "name": "ab",  # too short to scrub out of other text safely
        "reply": "ok",  # a short text of theirs is also everyone else's word
    }
    assert scrub.value(value) == {
        "body": ERASED,
        "quote": f"you said “{ERASED}”",
        "list": ["hi erased-7!", 3, None],
        "name": "ab",
        "reply": "ok",
    }
    assert scrub.value(value, erase_keys={"reply"})["reply"] == ERASED


def test_message_rows_survive_erasure(api: Api) -> None:
    subject, _ = subject_with_data(api)
    admin = api.user(Role.admin)
    api.call(functools.partial(api.ctx.privacy.erase_user, admin), subject.id)

    async def bodies(ctx: AppContext) -> list[str]:
        async with ctx.db.read() as session:
            return list(
                await session.scalars(select(Message.body).where(Message.sender_id == subject.id))
            )

    assert set(api.call(bodies, api.ctx)) == {ERASED}
