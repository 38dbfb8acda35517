"""Support conversations and messages over REST (S1-S6, R1), in-process on SQLite."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from chatforge.app import create_app
from chatforge.settings import Settings
from chatforge.store.models import Role, User
from chatforge.store.types import utcnow
from tests.conftest import Api


@pytest.fixture
def topic_id(api: Api) -> int:
    admin = api.user(Role.admin)
    response = api.client.post("/api/topics", json={"name": "Git"}, headers=api.auth(admin))
    assert response.status_code == 201
    topic: int = response.json()["id"]
    return topic


def open_as(api: Api, user: User, topic_id: int, status: int = 201) -> dict[str, object]:
    response = api.client.post(
        "/api/conversations", json={"topic_id": topic_id}, headers=api.auth(user)
    )
    assert response.status_code == status, response.text
    body: dict[str, object] = response.json()
    return body


def test_open_claim_chat_end_rate(api: Api, topic_id: int) -> None:
    user, moderator = api.user(), api.user(Role.moderator)
    opened = open_as(api, user, topic_id)
    assert opened["status"] == "pending"
    assert opened["topic_name"] == "Git"
    cid = opened["id"]

    claimed = api.client.post(f"/api/conversations/{cid}/claim", headers=api.auth(moderator))
    assert claimed.status_code == 200
    assert claimed.json()["status"] == "active"
    assert claimed.json()["assignee_id"] == moderator.id

    for sender, body in ((user, "How do I rebase?"), (moderator, "git rebase -i main")):
        sent = api.client.post(
            f"/api/conversations/{cid}/messages", json={"body": body}, headers=api.auth(sender)
        )
        assert sent.status_code == 201, sent.text
    messages = api.client.get(f"/api/conversations/{cid}/messages", headers=api.auth(user)).json()
    assert [m["body"] for m in messages] == ["How do I rebase?", "git rebase -i main"]
    assert [m["seq"] for m in messages] == [3, 4]

    too_early = api.client.post(
        f"/api/conversations/{cid}/rating", json={"rating": "excellent"}, headers=api.auth(user)
    )
    assert too_early.status_code == 409

    ended = api.client.post(f"/api/conversations/{cid}/end", headers=api.auth(user))
    assert ended.status_code == 200
    view = ended.json()
    assert view["status"] == "done"
    assert view["seconds_to_first_response"] is not None
    assert view["handling_seconds"] is not None

    after_end = api.client.post(
        f"/api/conversations/{cid}/messages", json={"body": "hi?"}, headers=api.auth(user)
    )
    assert after_end.status_code == 409
    assert after_end.json()["code"] == "conversation_closed"

    rated = api.client.post(
        f"/api/conversations/{cid}/rating",
        json={"rating": "satisfactory", "comment": "Quick, thanks"},
        headers=api.auth(user),
    )
    assert rated.status_code == 200
    assert rated.json()["user_rating"] == "satisfactory"

    events = api.client.get(f"/api/conversations/{cid}/events", headers=api.auth(user)).json()
    assert [e["seq"] for e in events["events"]] == list(range(1, events["last_seq"] + 1))
    assert [e.get("status") for e in events["events"] if e["type"] == "conversation_updated"] == [
        "pending",
        "active",
        "done",
        "done",
    ]


def test_one_open_conversation_per_user(api: Api, topic_id: int) -> None:
    user = api.user()
    first = open_as(api, user, topic_id)
    again = open_as(api, user, topic_id, status=200)
    assert again["id"] == first["id"]


def test_open_needs_an_active_topic(api: Api, topic_id: int) -> None:
    admin, user = api.user(Role.admin), api.user()
    api.client.patch(f"/api/topics/{topic_id}", json={"active": False}, headers=api.auth(admin))
    assert open_as(api, user, topic_id, status=404)["code"] == "topic_not_found"
    assert open_as(api, user, 2**31 - 1, status=404)["code"] == "topic_not_found"
    bad = api.client.post("/api/conversations", json={"topic_id": "x"}, headers=api.auth(user))
    assert bad.status_code == 422


def test_second_claim_gets_409(api: Api, topic_id: int) -> None:
    cid = open_as(api, api.user(), topic_id)["id"]
    first, second = api.user(Role.moderator), api.user(Role.moderator)
    assert (
        api.client.post(f"/api/conversations/{cid}/claim", headers=api.auth(first)).status_code
        == 200
    )
    lost = api.client.post(f"/api/conversations/{cid}/claim", headers=api.auth(second))
    assert lost.status_code == 409
    assert lost.json()["code"] == "already_claimed"


def test_users_and_annotators_cannot_claim(api: Api, topic_id: int) -> None:
    cid = open_as(api, api.user(), topic_id)["id"]
    for role in (Role.user, Role.annotator):
        response = api.client.post(
            f"/api/conversations/{cid}/claim", headers=api.auth(api.user(role))
        )
        assert response.status_code == 403


def test_moderator_holds_at_most_max_active(api: Api, topic_id: int) -> None:
    moderator = api.user(Role.moderator)
    first = open_as(api, api.user(), topic_id)["id"]
    second = open_as(api, api.user(), topic_id)["id"]
    assert (
        api.client.post(
            f"/api/conversations/{first}/claim", headers=api.auth(moderator)
        ).status_code
        == 200
    )
    refused = api.client.post(f"/api/conversations/{second}/claim", headers=api.auth(moderator))
    assert refused.status_code == 409
    assert refused.json()["code"] == "too_many_active"
    api.client.post(f"/api/conversations/{first}/end", headers=api.auth(moderator))
    assert (
        api.client.post(
            f"/api/conversations/{second}/claim", headers=api.auth(moderator)
        ).status_code
        == 200
    )


def test_transfer_to_another_moderator(api: Api, topic_id: int) -> None:
    user, first, second = api.user(), api.user(Role.moderator), api.user(Role.moderator)
    cid = open_as(api, user, topic_id)["id"]
    api.client.post(f"/api/conversations/{cid}/claim", headers=api.auth(first))
    not_a_moderator = api.client.post(
        f"/api/conversations/{cid}/transfer",
        json={"moderator_id": user.id},
        headers=api.auth(first),
    )
    assert not_a_moderator.status_code == 422
    by_other = api.client.post(
        f"/api/conversations/{cid}/transfer",
        json={"moderator_id": second.id},
        headers=api.auth(second),
    )
    assert by_other.status_code == 403
    moved = api.client.post(
        f"/api/conversations/{cid}/transfer",
        json={"moderator_id": second.id},
        headers=api.auth(first),
    )
    assert moved.status_code == 200
    assert moved.json()["assignee_id"] == second.id
    gone = api.client.post(
        f"/api/conversations/{cid}/messages", json={"body": "still here?"}, headers=api.auth(first)
    )
    assert gone.status_code == 403
    ok = api.client.post(
        f"/api/conversations/{cid}/messages", json={"body": "I take over"}, headers=api.auth(second)
    )
    assert ok.status_code == 201


def test_unanswered_claim_returns_to_the_queue(api: Api, topic_id: int) -> None:
    user, moderator = api.user(), api.user(Role.moderator)
    quiet = open_as(api, user, topic_id)["id"]
    answered = open_as(api, api.user(), topic_id)["id"]
    api.client.post(f"/api/conversations/{quiet}/claim", headers=api.auth(moderator))
    helper = api.user(Role.moderator)
    api.client.post(f"/api/conversations/{answered}/claim", headers=api.auth(helper))
    api.client.post(
        f"/api/conversations/{answered}/messages", json={"body": "Hi!"}, headers=api.auth(helper)
    )
    support = api.ctx.support
    later = utcnow() + support.claim_timeout + timedelta(seconds=1)
    assert api.client.portal.call(support.release_unanswered, utcnow()) == []  # type: ignore[union-attr]
    assert api.client.portal.call(support.release_unanswered, later) == [quiet]  # type: ignore[union-attr]
    view = api.client.get(f"/api/conversations/{quiet}", headers=api.auth(user)).json()
    assert view["status"] == "pending"
    assert view["assignee_id"] is None


def test_queue_position_and_status(api: Api, topic_id: int) -> None:
    first, second = api.user(), api.user()
    open_as(api, first, topic_id)
    cid = open_as(api, second, topic_id)["id"]
    position = api.client.get(f"/api/conversations/{cid}/queue", headers=api.auth(second)).json()
    assert position["position"] == 2
    assert position["estimated_wait_seconds"] > 0
    other = api.client.get(f"/api/conversations/{cid}/queue", headers=api.auth(first))
    assert other.status_code == 403
    status = api.client.get("/api/support/status", headers=api.auth(first)).json()
    assert status == {"moderators_online": 0, "pending": 2}


def test_who_may_read_a_conversation(api: Api, topic_id: int) -> None:
    owner, stranger = api.user(), api.user()
    annotator, moderator = api.user(Role.annotator), api.user(Role.moderator)
    cid = open_as(api, owner, topic_id)["id"]
    for reader, status in ((owner, 200), (moderator, 200), (stranger, 403), (annotator, 403)):
        assert (
            api.client.get(f"/api/conversations/{cid}/events", headers=api.auth(reader)).status_code
            == status
        )
    api.client.post(f"/api/conversations/{cid}/end", headers=api.auth(owner))
    assert (
        api.client.get(f"/api/conversations/{cid}/events", headers=api.auth(annotator)).status_code
        == 200
    )
    listed = api.client.get("/api/conversations", headers=api.auth(stranger)).json()
    assert listed == []
    mine = api.client.get("/api/conversations?status=done", headers=api.auth(owner)).json()
    assert [c["id"] for c in mine] == [cid]


def test_only_the_owner_rates_and_only_valid_ratings(api: Api, topic_id: int) -> None:
    owner, moderator = api.user(), api.user(Role.moderator)
    cid = open_as(api, owner, topic_id)["id"]
    api.client.post(f"/api/conversations/{cid}/end", headers=api.auth(owner))
    assert (
        api.client.post(
            f"/api/conversations/{cid}/rating",
            json={"rating": "excellent"},
            headers=api.auth(moderator),
        ).status_code
        == 403
    )
    for bad in ({"rating": "superb"}, {"rating": "poor", "comment": "x" * 1001}, {}):
        assert (
            api.client.post(
                f"/api/conversations/{cid}/rating", json=bad, headers=api.auth(owner)
            ).status_code
            == 422
        )


def test_message_validation_and_idempotency_over_rest(api: Api, topic_id: int) -> None:
    user = api.user()
    cid = open_as(api, user, topic_id)["id"]  # the user may write while waiting
    url = f"/api/conversations/{cid}/messages"
    first = api.client.post(url, json={"body": "hello", "client_id": "c-1"}, headers=api.auth(user))
    again = api.client.post(url, json={"body": "hello", "client_id": "c-1"}, headers=api.auth(user))
    assert first.status_code == again.status_code == 201
    assert again.json() == {**first.json(), "duplicate": True}
    too_long = api.client.post(url, json={"body": "x" * 4001}, headers=api.auth(user))
    assert too_long.status_code == 422
    assert too_long.json()["code"] == "body_too_long"
    private = api.client.post(
        url, json={"body": "psst", "recipient_id": user.id}, headers=api.auth(user)
    )
    assert private.json()["code"] == "invalid_recipient"
    reply = api.client.post(url, json={"body": "re", "reply_to": 999999}, headers=api.auth(user))
    assert reply.json()["code"] == "invalid_reply_to"
    for bad in ({"body": 5}, {"body": "x", "client_id": ""}, {"body": "x", "extra": 1}, {}):
        assert api.client.post(url, json=bad, headers=api.auth(user)).status_code == 422
    missing = api.client.post(
        "/api/conversations/999999/messages", json={"body": "x"}, headers=api.auth(user)
    )
    assert missing.status_code == 404
    stored = api.client.get(url, headers=api.auth(user)).json()
    assert [m["body"] for m in stored] == ["hello"]


def test_events_page_through_history(api: Api, topic_id: int) -> None:
    user = api.user()
    cid = open_as(api, user, topic_id)["id"]
    for n in range(5):
        api.client.post(
            f"/api/conversations/{cid}/messages", json={"body": f"m{n}"}, headers=api.auth(user)
        )
    seen: list[int] = []
    after = 0
    while True:
        page = api.client.get(
            f"/api/conversations/{cid}/events?after_seq={after}&limit=2", headers=api.auth(user)
        ).json()
        if not page["events"]:
            break
        seen += [e["seq"] for e in page["events"]]
        after = page["next_after_seq"]
    assert seen == list(range(1, 7))
    assert (
        api.client.get(
            f"/api/conversations/{cid}/events?limit=0", headers=api.auth(user)
        ).status_code
        == 422
    )


def test_auto_assignment_picks_the_least_busy_online_moderator(settings: Settings) -> None:
    settings.auto_assign = True
    settings.max_active_per_moderator = 2
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        api = Api(client)
        admin = api.user(Role.admin)
        topic = client.post("/api/topics", json={"name": "Auto"}, headers=api.auth(admin)).json()
        busy, idle, offline = (api.user(Role.moderator) for _ in range(3))
        for moderator in (busy, idle):
            api.call(api.ctx.presence.connected, moderator.id, Role.moderator)
        holders = []
        for expected in ([1, 0], [1, 1], [2, 1], [2, 2]):
            opened = open_as(api, api.user(), topic["id"])
            assert opened["status"] == "active"
            holders.append(opened["assignee_id"])
            # The least busy one gets each new conversation, so the load stays even.
            assert sorted((holders.count(m.id) for m in (busy, idle)), reverse=True) == expected
        assert offline.id not in holders
        # Both online moderators are full now: the next one waits in the queue.
        assert open_as(api, api.user(), topic["id"])["status"] == "pending"
