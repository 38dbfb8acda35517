"""Live session rooms over REST (L1-L12), in-process on SQLite."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from chatforge.store.models import AuditRecord, Event, Message, Role, User
from chatforge.store.session_models import Mute, ProfanityStrike
from chatforge.store.types import utcnow
from tests.conftest import Api


@dataclass
class Room:
    id: int
    instructor: User
    alice: User
    bob: User


def post(api: Api, user: User, path: str, body: Any = None, status: int | None = None) -> Any:
    response = api.client.post(path, json=body, headers=api.auth(user))
    if status is not None:
        assert response.status_code == status, response.text
    return response


def send(api: Api, room: Room, user: User, body: str, **extra: Any) -> Any:
    return api.client.post(
        f"/api/conversations/{room.id}/messages",
        json={"body": body, **extra},
        headers=api.auth(user),
    )


def messages(api: Api, room: Room, user: User) -> list[dict[str, Any]]:
    response = api.client.get(f"/api/conversations/{room.id}/messages", headers=api.auth(user))
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


def events(api: Api, room: Room, user: User, after_seq: int = 0) -> list[dict[str, Any]]:
    response = api.client.get(
        f"/api/conversations/{room.id}/events?after_seq={after_seq}", headers=api.auth(user)
    )
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["events"]
    return result


def export(api: Api, room: Room, user: User, fmt: str, include_private: bool = False) -> Any:
    return api.client.get(
        f"/api/conversations/{room.id}/export",
        params={"format": fmt, "include_private": str(include_private).lower()},
        headers=api.auth(user),
    )


@pytest.fixture
def room(api: Api) -> Room:
    instructor = api.user(Role.moderator)
    created = post(api, instructor, "/api/sessions", {"title": "Rebasing 101"}, 201).json()
    alice, bob = api.user(), api.user()
    for user in (alice, bob):
        post(api, user, f"/api/sessions/{created['id']}/join", status=200)
    return Room(created["id"], instructor, alice, bob)


def run(api: Api, work: Any) -> Any:
    async def go() -> Any:
        async with api.ctx.db.write() as session:
            return await work(session)

    return api.client.portal.call(go)  # type: ignore[union-attr]


# -- L1: create, join, leave, participants ---------------------------------------------------


def test_only_moderators_and_admins_create_sessions(api: Api) -> None:
    user = api.user()
    refused = post(api, user, "/api/sessions", {"title": "Mine"})
    assert refused.status_code == 403
    admin = api.user(Role.admin)
    created = post(api, admin, "/api/sessions", {"title": "Admin room"}, 201).json()
    assert created["kind"] == "session"
    assert created["status"] == "active"
    assert created["owner_id"] == admin.id


def test_join_and_leave_are_events_and_change_the_participant_list(api: Api, room: Room) -> None:
    state = api.client.get(f"/api/sessions/{room.id}", headers=api.auth(room.alice)).json()
    assert [(p["user_id"], p["role"]) for p in state["participants"]] == [
        (room.instructor.id, "instructor"),
        (room.alice.id, "member"),
        (room.bob.id, "member"),
    ]
    assert state["is_instructor"] is False
    again = post(api, room.alice, f"/api/sessions/{room.id}/join", status=200)
    assert again.json()["id"] == room.id
    left = post(api, room.bob, f"/api/sessions/{room.id}/leave")
    assert left.status_code == 204
    kinds = [(e["type"], e["user_id"]) for e in events(api, room, room.instructor)]
    assert kinds == [
        ("user_joined", room.instructor.id),
        ("user_joined", room.alice.id),
        ("user_joined", room.bob.id),
        ("user_left", room.bob.id),
    ]
    state = api.client.get(f"/api/sessions/{room.id}", headers=api.auth(room.alice)).json()
    assert room.bob.id not in [p["user_id"] for p in state["participants"]]
    # Having left, Bob no longer reads the room.
    assert send(api, room, room.bob, "still here?").status_code == 403
    outsider = api.user()
    assert api.client.get(f"/api/sessions/{room.id}", headers=api.auth(outsider)).status_code == 403


# -- L2: messages and paginated history -------------------------------------------------------


def test_messages_and_paginated_history(api: Api, room: Room) -> None:
    ids = [send(api, room, room.instructor, f"slide {n}").json()["message_id"] for n in range(1, 8)]
    page = api.client.get(
        f"/api/conversations/{room.id}/messages?limit=3&before_id={ids[-1]}",
        headers=api.auth(room.alice),
    ).json()
    assert [m["body"] for m in page] == ["slide 4", "slide 5", "slide 6"]


# -- L3: private messages ---------------------------------------------------------------------


def test_private_message_reaches_only_the_two_and_the_instructors(api: Api, room: Room) -> None:
    secret = send(api, room, room.alice, "I am lost", recipient_id=room.instructor.id)
    assert secret.status_code == 201, secret.text
    reply = send(api, room, room.instructor, "Stay after class", recipient_id=room.alice.id)
    assert reply.status_code == 201
    send(api, room, room.bob, "hello all")
    private_bodies = {"I am lost", "Stay after class"}

    # History
    assert {m["body"] for m in messages(api, room, room.alice)} >= private_bodies
    assert {m["body"] for m in messages(api, room, room.instructor)} >= private_bodies
    assert [m["body"] for m in messages(api, room, room.bob)] == ["hello all"]
    # Event history (what a replay after_seq serves)
    bob_events = events(api, room, room.bob)
    assert not [e for e in bob_events if e["type"] == "private_message"]
    assert all(e.get("body") not in private_bodies for e in bob_events)
    alice_private = [e for e in events(api, room, room.alice) if e["type"] == "private_message"]
    assert len(alice_private) == 2
    # Export: Bob's has no private message and he may not ask for them.
    assert "I am lost" not in export(api, room, room.bob, "csv").text
    assert export(api, room, room.bob, "csv", include_private=True).status_code == 403
    assert "I am lost" in export(api, room, room.instructor, "csv", include_private=True).text
    assert "I am lost" not in export(api, room, room.instructor, "csv").text


def test_participants_write_privately_only_to_instructors(api: Api, room: Room) -> None:
    to_peer = send(api, room, room.alice, "psst", recipient_id=room.bob.id)
    assert to_peer.status_code == 422
    assert to_peer.json()["code"] == "invalid_recipient"
    outsider = api.user()
    to_outsider = send(api, room, room.instructor, "hi", recipient_id=outsider.id)
    assert to_outsider.json()["code"] == "invalid_recipient"
    assert send(api, room, room.instructor, "note", recipient_id=room.bob.id).status_code == 201


def test_private_audience_is_fixed_at_write_time(api: Api, room: Room) -> None:
    send(api, room, room.alice, "question", recipient_id=room.instructor.id)

    async def audience(session: Any) -> Any:
        return await session.scalar(
            select(Event.audience).where(
                Event.conversation_id == room.id, Event.type == "private_message"
            )
        )

    assert run(api, audience) == sorted({room.alice.id, room.instructor.id})


def test_reply_to_a_private_message_needs_to_see_it(api: Api, room: Room) -> None:
    secret = send(api, room, room.alice, "q", recipient_id=room.instructor.id).json()
    bad = send(api, room, room.bob, "re", reply_to=secret["message_id"])
    assert bad.json()["code"] == "invalid_reply_to"
    good = send(api, room, room.instructor, "a", reply_to=secret["message_id"])
    assert good.status_code == 201
    assert messages(api, room, room.instructor)[-1]["reply_to_id"] == secret["message_id"]


# -- L4: reactions ----------------------------------------------------------------------------


def react(api: Api, room: Room, user: User, message_id: int, emoji: str) -> Any:
    return api.client.post(
        f"/api/conversations/{room.id}/messages/{message_id}/reactions",
        json={"emoji": emoji},
        headers=api.auth(user),
    )


def test_reactions_are_per_user_and_come_back_in_history(api: Api, room: Room) -> None:
    mid = send(api, room, room.instructor, "Any questions?").json()["message_id"]
    first = react(api, room, room.alice, mid, "👍").json()
    assert (first["added"], first["count"], first["changed"]) == (True, 1, True)
    again = react(api, room, room.alice, mid, "👍").json()
    assert (again["count"], again["changed"]) == (1, False)
    react(api, room, room.bob, mid, "👍")
    react(api, room, room.bob, mid, "🔥")
    reactions = messages(api, room, room.alice)[0]["reactions"]
    assert [(r["emoji"], r["count"]) for r in reactions] == [("👍", 2), ("🔥", 1)]
    assert [u["id"] for u in reactions[0]["users"]] == [room.alice.id, room.bob.id]
    removed = api.client.delete(
        f"/api/conversations/{room.id}/messages/{mid}/reactions",
        params={"emoji": "👍"},
        headers=api.auth(room.alice),
    ).json()
    assert (removed["added"], removed["count"]) == (False, 1)
    kinds = [e["type"] for e in events(api, room, room.bob) if "reaction" in e["type"]]
    assert kinds == ["reaction_added", "reaction_added", "reaction_added", "reaction_removed"]
    assert react(api, room, room.alice, mid, "😀").json()["code"] == "invalid_emoji"


def test_reactions_to_a_private_message_stay_private(api: Api, room: Room) -> None:
    mid = send(api, room, room.alice, "q", recipient_id=room.instructor.id).json()["message_id"]
    assert react(api, room, room.bob, mid, "👍").status_code == 404
    assert react(api, room, room.instructor, mid, "❤").json()["emoji"] == "❤️"
    assert not [e for e in events(api, room, room.bob) if e["type"].startswith("reaction")]


def test_reactions_are_rate_limited_but_not_for_instructors(api: Api, room: Room) -> None:
    mids = [send(api, room, room.instructor, f"m{n}").json()["message_id"] for n in range(6)]
    emoji = ["👍", "👏"]
    done = 0
    for mid in mids:
        for e in emoji:
            if done == 10:
                break
            assert react(api, room, room.alice, mid, e).status_code == 200
            done += 1
    before = len(events(api, room, room.alice))
    over = react(api, room, room.alice, mids[5], "👍")
    assert over.status_code == 429
    assert over.json()["code"] == "rate_limited"
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert len(events(api, room, room.alice)) == before
    for mid in mids:
        for e in ("🔥", "❤️"):
            assert react(api, room, room.instructor, mid, e).status_code == 200


# -- L5: hands --------------------------------------------------------------------------------


def test_hands_in_the_order_raised_lowered_and_acknowledged(api: Api, room: Room) -> None:
    base = f"/api/conversations/{room.id}/hands"
    post(api, room.bob, base, status=201)
    post(api, room.alice, base, status=201)
    post(api, room.bob, base, status=201)  # again: keeps his place
    hands = api.client.get(base, headers=api.auth(room.alice)).json()
    assert [h["user_id"] for h in hands] == [room.bob.id, room.alice.id]
    refused = api.client.delete(base, params={"user_id": room.bob.id}, headers=api.auth(room.alice))
    assert refused.status_code == 403
    acknowledged = post(api, room.instructor, f"{base}/{room.alice.id}/acknowledge", status=200)
    assert acknowledged.json()["acknowledged"] is True
    assert post(api, room.alice, f"{base}/{room.bob.id}/acknowledge").status_code == 403
    lowered = api.client.delete(
        base, params={"user_id": room.bob.id}, headers=api.auth(room.instructor)
    )
    assert lowered.status_code == 204
    assert api.client.delete(base, headers=api.auth(room.alice)).status_code == 204
    assert api.client.get(base, headers=api.auth(room.alice)).json() == []
    kinds = [e["type"] for e in events(api, room, room.alice) if "hand" in e["type"]]
    assert kinds == [
        "hand_raised",
        "hand_raised",
        "hand_acknowledged",
        "hand_lowered",
        "hand_lowered",
    ]


# -- L7: delete, mute, unmute -----------------------------------------------------------------


def test_instructor_soft_deletes_a_message(api: Api, room: Room) -> None:
    mid = send(api, room, room.alice, "oops, my password is hunter2").json()["message_id"]
    path = f"/api/conversations/{room.id}/messages/{mid}"
    assert api.client.delete(path, headers=api.auth(room.bob)).status_code == 403
    deleted = api.client.delete(path, headers=api.auth(room.instructor))
    assert deleted.status_code == 200
    shown = messages(api, room, room.bob)[0]
    assert (shown["deleted"], shown["body"]) == (True, "")
    history = events(api, room, room.bob)
    assert "hunter2" not in json.dumps(history)
    assert history[-1]["type"] == "message_deleted"
    assert history[-1]["message_id"] == mid
    assert "(message deleted)" in export(api, room, room.instructor, "txt").text
    assert api.client.delete(path, headers=api.auth(room.instructor)).status_code == 409

    async def stored(session: Any) -> Any:
        return (await session.get(Message, mid)).body

    assert run(api, stored) == "oops, my password is hunter2"


def test_mute_blocks_sending_with_time_left_and_expires_by_itself(api: Api, room: Room) -> None:
    muted = post(
        api,
        room.instructor,
        f"/api/conversations/{room.id}/mutes",
        {"user_id": room.alice.id, "duration_minutes": 10, "reason": "Spamming"},
        201,
    ).json()
    assert muted["reason"] == "Spamming"
    refused = send(api, room, room.alice, "let me talk")
    assert refused.status_code == 403
    assert refused.json()["code"] == "muted"
    assert "Spamming" in refused.json()["detail"]
    assert 540 <= int(refused.headers["Retry-After"]) <= 600
    assert send(api, room, room.bob, "I can").status_code == 201
    state = api.client.get(f"/api/sessions/{room.id}", headers=api.auth(room.alice)).json()
    assert state["my_mute"]["reason"] == "Spamming"

    # Time passes: the stored end is in the past, and nothing had to lift the mute.
    async def expire(session: Any) -> None:
        await session.execute(
            update(Mute)
            .where(Mute.user_id == room.alice.id)
            .values(until=utcnow() - timedelta(seconds=1))
        )

    run(api, expire)
    assert send(api, room, room.alice, "back").status_code == 201


def test_permanent_mute_and_unmute(api: Api, room: Room) -> None:
    base = f"/api/conversations/{room.id}/mutes"
    assert post(api, room.bob, base, {"user_id": room.alice.id}).status_code == 403
    assert post(api, room.instructor, base, {"user_id": room.instructor.id}).status_code == 422
    post(api, room.instructor, base, {"user_id": room.alice.id}, 201)
    refused = send(api, room, room.alice, "hello?")
    assert refused.status_code == 403
    assert "Retry-After" not in refused.headers
    listed = api.client.get(base, headers=api.auth(room.instructor)).json()
    assert [(m["user_id"], m["until"]) for m in listed] == [(room.alice.id, None)]
    unmuted = api.client.delete(f"{base}/{room.alice.id}", headers=api.auth(room.instructor))
    assert unmuted.status_code == 204
    assert send(api, room, room.alice, "thanks").status_code == 201
    kinds = [e["type"] for e in events(api, room, room.bob) if "mute" in e["type"]]
    assert kinds == ["user_muted", "user_unmuted"]

    async def actions(session: Any) -> list[str]:
        rows = await session.scalars(
            select(AuditRecord.action).where(AuditRecord.action.like("session_%"))
        )
        return list(rows)

    assert {"session_mute", "session_unmute"} <= set(run(api, actions))


# -- L8: profanity ----------------------------------------------------------------------------


def test_profanity_is_censored_and_three_strikes_mute_for_15_minutes(api: Api, room: Room) -> None:
    first = send(api, room, room.alice, "this is shit")
    assert first.status_code == 201
    assert messages(api, room, room.bob)[-1]["body"] == "this is ****"
    send(api, room, room.alice, "fuck")
    assert send(api, room, room.alice, "all clean").status_code == 201
    third = send(api, room, room.alice, "bullshit")
    assert third.status_code == 201
    muted = [e for e in events(api, room, room.bob) if e["type"] == "user_muted"]
    assert len(muted) == 1
    assert muted[0]["automatic"] is True
    assert muted[0]["user_id"] == room.alice.id
    refused = send(api, room, room.alice, "hello")
    assert refused.json()["code"] == "muted"
    assert 14 * 60 <= int(refused.headers["Retry-After"]) <= 15 * 60

    async def audit(session: Any) -> list[tuple[str, Any]]:
        rows = await session.execute(
            select(AuditRecord.action, AuditRecord.detail)
            .where(AuditRecord.action.in_(["session_profanity", "session_auto_mute"]))
            .order_by(AuditRecord.id)
        )
        return [(a, d) for a, d in rows]

    records = run(api, audit)
    assert [a for a, _ in records] == [
        "session_profanity",
        "session_profanity",
        "session_profanity",
        "session_auto_mute",
    ]
    assert records[0][1]["original"] == "this is shit"


def test_strikes_older_than_an_hour_do_not_count(api: Api, room: Room) -> None:
    send(api, room, room.alice, "shit")
    send(api, room, room.alice, "shit again")

    async def age(session: Any) -> None:
        await session.execute(
            update(ProfanityStrike).values(created_at=utcnow() - timedelta(minutes=61))
        )

    run(api, age)
    send(api, room, room.alice, "shit once more")
    assert not [e for e in events(api, room, room.bob) if e["type"] == "user_muted"]


# -- L9: rate limits --------------------------------------------------------------------------


def test_five_messages_per_ten_seconds_and_nothing_stored_over_it(api: Api, room: Room) -> None:
    for n in range(5):
        assert send(api, room, room.alice, f"m{n}").status_code == 201
    over = send(api, room, room.alice, "m5")
    assert over.status_code == 429
    assert over.json()["code"] == "rate_limited"
    assert 1 <= int(over.headers["Retry-After"]) <= 10
    assert [m["body"] for m in messages(api, room, room.alice)] == [f"m{n}" for n in range(5)]
    # Per user: Bob is not affected; instructors are exempt.
    assert send(api, room, room.bob, "hi").status_code == 201
    for n in range(8):
        assert send(api, room, room.instructor, f"i{n}").status_code == 201


# -- L10: export ------------------------------------------------------------------------------


def test_export_formats_and_csv_formula_injection(api: Api, room: Room) -> None:
    send(api, room, room.alice, '=HYPERLINK("http://evil")')
    send(api, room, room.bob, "+1 great")
    send(api, room, room.bob, "@here -x")
    send(api, room, room.instructor, "\tindent")
    send(api, room, room.alice, "plain")
    response = export(api, room, room.instructor, "csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    bodies = [r["body"] for r in rows]
    assert bodies == ['\'=HYPERLINK("http://evil")', "'+1 great", "'@here -x", "'\tindent", "plain"]
    document = export(api, room, room.instructor, "json").json()
    assert document["session_id"] == room.id
    assert [m["body"] for m in document["messages"]][-1] == "plain"
    text = export(api, room, room.alice, "txt")
    assert text.headers["content-type"].startswith("text/plain")
    assert f"] {room.bob.display_name}: +1 great" in text.text
    assert export(api, room, api.user(), "json").status_code == 403


def test_support_conversations_keep_their_rules(api: Api) -> None:
    """The room rules apply to sessions only: support chats are not censored or limited."""
    admin, user, moderator = api.user(Role.admin), api.user(), api.user(Role.moderator)
    topic = post(api, admin, "/api/topics", {"name": "Git"}, 201).json()["id"]
    cid = post(api, user, "/api/conversations", {"topic_id": topic}, 201).json()["id"]
    post(api, moderator, f"/api/conversations/{cid}/claim", status=200)
    for n in range(7):
        response = api.client.post(
            f"/api/conversations/{cid}/messages",
            json={"body": f"shit {n}"},
            headers=api.auth(user),
        )
        assert response.status_code == 201
    bodies = [
        m["body"]
        for m in api.client.get(f"/api/conversations/{cid}/messages", headers=api.auth(user)).json()
    ]
    assert bodies == [f"shit {n}" for n in range(7)]
