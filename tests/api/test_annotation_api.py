"""The annotation workbench over REST (N1-N3, N5): filters, search, annotating, corrections,
turn ratings, deleting, and who sees what."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from chatforge.store.models import AuditRecord, ConversationKind, Rating, Role, User
from chatforge.store.types import utcnow
from tests.conftest import Api
from tests.corpus import Built, Said, delete_message, finished_conversation

LIST = "/api/annotation/conversations"


def build(api: Api, owner: User, said: list[Said], **kwargs: Any) -> Built:
    async def work() -> Built:
        return await finished_conversation(api.ctx, owner, said, **kwargs)

    return api.client.portal.call(work)  # type: ignore[union-attr]


def ids(api: Api, who: User, **params: Any) -> list[int]:
    response = api.client.get(LIST, params=params, headers=api.auth(who))
    assert response.status_code == 200, response.text
    return [item["conversation"]["id"] for item in response.json()["items"]]


def audit_actions(api: Api) -> list[tuple[str, int | None, int | None, dict[str, Any]]]:
    async def work() -> list[tuple[str, int | None, int | None, dict[str, Any]]]:
        async with api.ctx.db.read() as session:
            rows = await session.scalars(select(AuditRecord).order_by(AuditRecord.id))
            return [(r.action, r.actor_id, r.target_id, r.detail) for r in rows]

    return api.client.portal.call(work)  # type: ignore[union-attr]


class People(dict[str, User]):
    """Accounts made on first use (password hashing is slow on purpose)."""

    def __init__(self, api: Api) -> None:
        super().__init__()
        self.api = api

    def __missing__(self, key: str) -> User:
        user = self.api.user(Role(key.rstrip("0123456789")))
        self[key] = user
        return user


@pytest.fixture
def people(api: Api) -> dict[str, User]:
    return People(api)


@pytest.fixture
def topics(api: Api, people: dict[str, User]) -> dict[str, int]:
    found = {}
    for name in ("Git", "SQL"):
        response = api.client.post(
            "/api/topics", json={"name": name}, headers=api.auth(people["admin"])
        )
        found[name] = response.json()["id"]
    return found


def test_filters_newest_first_and_pagination(
    api: Api, people: dict[str, User], topics: dict[str, int]
) -> None:
    p, now = people, utcnow()
    old = build(
        api,
        p["user"],
        [Said(p["user"], "rebase question"), Said(p["moderator"], "use git rebase")],
        assignee=p["moderator"],
        topic_id=topics["Git"],
        user_rating=Rating.poor,
        ended_at=now - timedelta(days=10),
    )
    new = build(
        api,
        p["user2"],
        [Said(p["user2"], "a join question"), Said(p["moderator"], "LEFT JOIN")],
        assignee=p["moderator"],
        topic_id=topics["SQL"],
        channel="whatsapp",
        user_rating=Rating.excellent,
        ended_at=now - timedelta(days=1),
    )
    bot = build(api, p["user"], [Said(p["user"], "python easy")], kind=ConversationKind.bot)
    from chatforge.store.models import ConversationStatus

    build(api, p["user"], [Said(p["user"], "still open")], status=ConversationStatus.active)
    a = p["annotator"]
    assert ids(api, a) == [bot.id, new.id, old.id]  # newest first; the open one is not listed
    assert ids(api, a, topic_id=topics["Git"]) == [old.id]
    assert ids(api, a, channel="whatsapp") == [new.id]
    assert ids(api, a, user_rating="poor") == [old.id]
    assert ids(api, a, kind="bot") == [bot.id]
    yesterday = (now - timedelta(days=1)).date().isoformat()
    assert ids(api, a, ended_from=yesterday) == [bot.id, new.id]
    assert ids(api, a, ended_to=(now - timedelta(days=5)).date().isoformat()) == [old.id]

    first = api.client.get(LIST, params={"per_page": 2}, headers=api.auth(a)).json()
    assert (first["total"], first["pages"]) == (3, 2)
    assert [i["conversation"]["id"] for i in first["items"]] == [bot.id, new.id]
    second = api.client.get(LIST, params={"per_page": 2, "page": 2}, headers=api.auth(a)).json()
    assert [i["conversation"]["id"] for i in second["items"]] == [old.id]
    assert second["items"][0]["message_count"] == 2

    # Annotation rating filters, and annotated conversations leave the to-do list (status=done).
    rate = api.client.post(
        f"/api/conversations/{new.id}/annotations",
        json={"rating": "excellent"},
        headers=api.auth(a),
    )
    assert rate.status_code == 200, rate.text
    assert ids(api, a, status="done") == [bot.id, old.id]
    assert ids(api, a, status="annotated") == [new.id]
    assert ids(api, a, rating="excellent") == [new.id]
    # The conversation's rating is the lowest any annotator gave.
    api.client.post(
        f"/api/conversations/{new.id}/annotations",
        json={"rating": "satisfactory"},
        headers=api.auth(p["annotator2"]),
    )
    assert ids(api, a, rating="excellent") == []
    assert ids(api, a, rating="satisfactory") == [new.id]
    item = api.client.get(LIST, params={"status": "annotated"}, headers=api.auth(a)).json()
    assert (item["items"][0]["rating"], item["items"][0]["annotators"]) == ("satisfactory", 2)


def test_only_annotators_and_admins(api: Api, people: dict[str, User]) -> None:
    for role in ("user", "moderator"):
        response = api.client.get(LIST, headers=api.auth(people[role]))
        assert response.status_code == 403
    assert api.client.get(LIST).status_code == 401
    assert api.client.get(LIST, headers=api.auth(people["admin"])).status_code == 200


def test_full_text_search(api: Api, people: dict[str, User]) -> None:
    p = people
    rebase = build(
        api,
        p["user"],
        [Said(p["user"], "How do I rebase onto main?"), Said(p["moderator"], "Try git pull")],
        assignee=p["moderator"],
    )
    other = build(
        api, p["user"], [Said(p["user"], 'Quotes "inside" text'), Said(p["moderator"], "ok")]
    )
    a = p["annotator"]
    assert ids(api, a, q="rebase") == [rebase.id]
    assert ids(api, a, q="REBASE main") == [rebase.id]  # every word, any case
    assert ids(api, a, q="rebase nothingsuch") == []
    assert ids(api, a, q="reba*") == [rebase.id]  # prefix
    assert ids(api, a, q='"inside"') == [other.id]

    # The correction is searchable too, and a deleted message no longer is.
    message_id = rebase.message_ids[1]
    api.client.patch(
        f"/api/messages/{message_id}/correction",
        json={"text": "Run git rebase --interactive"},
        headers=api.auth(a),
    )
    assert ids(api, a, q="interactive") == [rebase.id]
    # Corrected again: the words of the replaced correction are gone from the index.
    api.client.patch(
        f"/api/messages/{message_id}/correction",
        json={"text": "Run git rebase --autosquash"},
        headers=api.auth(a),
    )
    assert ids(api, a, q="interactive") == []
    assert ids(api, a, q="autosquash") == [rebase.id]
    assert ids(api, a, q="pull") == [rebase.id]  # the original text still counts
    api.client.portal.call(delete_message, api.ctx, message_id, p["moderator"])  # type: ignore[union-attr]
    assert ids(api, a, q="autosquash") == []
    assert ids(api, a, q="pull") == []
    assert ids(api, a, q="rebase") == [rebase.id]  # the other message still has it


HOSTILE = [
    '"',
    '"unbalanced',
    "*",
    "rebase*)",
    "NEAR(",
    "NEAR(a b",
    "(((",
    "a OR",
    "AND",
    "NOT x",
    "col:rebase",
    "^rebase",
    "'; DROP TABLE messages; --",
    "\x00",
    "a" * 10_000,
    "rebase " * 1500,
    "rebase\u00e9\U0001f600 “smart” «quotes»",
]


def test_hostile_search_is_never_a_server_error(api: Api, people: dict[str, User]) -> None:
    build(api, people["user"], [Said(people["user"], "rebase NEAR AND col")])
    for query in HOSTILE:
        response = api.client.get(LIST, params={"q": query}, headers=api.auth(people["annotator"]))
        assert response.status_code in {200, 400}, (query[:20], response.text)
        if response.status_code == 400:
            assert response.json()["code"] in {
                "search_too_long",
                "search_too_many_words",
                "search_without_words",
            }
        # Still answering, with the data intact.
        assert len(ids(api, people["annotator"], q="rebase")) == 1


def test_search_words_that_are_fts_operators_are_plain_words(
    api: Api, people: dict[str, User]
) -> None:
    found = build(api, people["user"], [Said(people["user"], "rebase NEAR AND col")])
    a = people["annotator"]
    assert ids(api, a, q="NEAR(") == [found.id]
    assert ids(api, a, q="AND") == [found.id]
    assert ids(api, a, q='"col"') == [found.id]
    too_long = api.client.get(LIST, params={"q": "a" * 10_000}, headers=api.auth(a))
    assert too_long.status_code == 400
    assert too_long.json()["code"] == "search_too_long"
    no_words = api.client.get(LIST, params={"q": "*** ((("}, headers=api.auth(a))
    assert no_words.status_code == 400
    assert no_words.json()["code"] == "search_without_words"


def session_with_private(api: Api, people: dict[str, User], host: User) -> Built:
    p = people
    return build(
        api,
        host,
        [
            Said(p["user"], "What is a window function?"),
            Said(host, "secret hint about ranking", to=p["user"]),
            Said(host, "It computes over a window of rows."),
        ],
        kind=ConversationKind.session,
        members=[p["user"], p["user2"]],
    )


def test_private_messages_only_for_hosts_and_admins(api: Api, people: dict[str, User]) -> None:
    p = people
    hosted_by_other = session_with_private(api, p, p["moderator"])
    hosted_by_annotator = session_with_private(api, p, p["annotator2"])
    private_id = hosted_by_other.message_ids[1]
    a = p["annotator"]

    detail = api.client.get(f"{LIST}/{hosted_by_other.id}", headers=api.auth(a)).json()
    assert [m["body"] for m in detail["messages"]] == [
        "What is a window function?",
        "It computes over a window of rows.",
    ]
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]
    # Not searchable, not correctable, not ratable: as if it did not exist.
    assert ids(api, a, q="secret hint") == []
    for method, path, body in (
        ("PATCH", f"/api/messages/{private_id}/correction", {"text": "x"}),
        ("PUT", f"/api/messages/{private_id}/turn-rating", {"verdict": "good"}),
    ):
        response = api.client.request(method, path, json=body, headers=api.auth(a))
        assert response.status_code == 404
    assert ids(api, a, status="done", kind="session") == [
        hosted_by_annotator.id,
        hosted_by_other.id,
    ]

    # The host of a session sees its private messages; an admin sees them everywhere.
    host_view = api.client.get(
        f"{LIST}/{hosted_by_annotator.id}", headers=api.auth(p["annotator2"])
    ).json()
    assert "secret hint about ranking" in [m["body"] for m in host_view["messages"]]
    assert ids(api, p["annotator2"], q="secret hint") == [hosted_by_annotator.id]
    admin_view = api.client.get(f"{LIST}/{hosted_by_other.id}", headers=api.auth(p["admin"])).json()
    private = [m for m in admin_view["messages"] if m["private"]]
    assert [m["body"] for m in private] == ["secret hint about ranking"]


def test_annotate_correct_exclude_rate_turns_and_audit(
    api: Api, people: dict[str, User], topics: dict[str, int]
) -> None:
    p, a = people, people["annotator"]
    for name in ("helpful", "rude"):
        created = api.client.post(
            "/api/annotation/labels", json={"name": name}, headers=api.auth(p["admin"])
        )
        assert created.status_code == 201
    assert (
        api.client.post("/api/annotation/labels", json={"name": "x"}, headers=api.auth(a))
    ).status_code == 403
    built = build(
        api,
        p["user"],
        [Said(p["user"], "My build fails"), Said(p["moderator"], "Delete node_modulez")],
        assignee=p["moderator"],
        topic_id=topics["Git"],
        user_rating=Rating.satisfactory,
    )
    question, answer = built.message_ids

    annotated = api.client.post(
        f"/api/conversations/{built.id}/annotations",
        json={
            "rating": "poor",
            "labels": ["rude", "helpful"],
            "notes": "typo in the answer",
            "topic_id": topics["SQL"],
        },
        headers=api.auth(a),
    )
    assert annotated.status_code == 200, annotated.text
    assert annotated.json()["labels"] == ["helpful", "rude"]
    unknown = api.client.post(
        f"/api/conversations/{built.id}/annotations",
        json={"rating": "poor", "labels": ["nope"]},
        headers=api.auth(a),
    )
    assert (unknown.status_code, unknown.json()["code"]) == (422, "unknown_label")

    corrected = api.client.patch(
        f"/api/messages/{answer}/correction",
        json={"text": "Delete node_modules"},
        headers=api.auth(a),
    )
    assert corrected.json() == {
        "message_id": answer,
        "conversation_id": built.id,
        "body": "Delete node_modulez",
        "corrected_body": "Delete node_modules",
        "excluded": False,
    }
    excluded = api.client.patch(
        f"/api/messages/{question}/correction", json={"excluded": True}, headers=api.auth(a)
    )
    assert excluded.json()["excluded"] is True
    assert excluded.json()["corrected_body"] is None  # text not sent: left alone
    good = api.client.put(
        f"/api/messages/{answer}/turn-rating", json={"verdict": "good"}, headers=api.auth(a)
    )
    assert good.json() == {"message_id": answer, "verdict": "good"}
    user_turn = api.client.put(
        f"/api/messages/{question}/turn-rating", json={"verdict": "bad"}, headers=api.auth(a)
    )
    assert (user_turn.status_code, user_turn.json()["code"]) == (422, "not_assistant_turn")

    detail = api.client.get(f"{LIST}/{built.id}", headers=api.auth(a)).json()
    assert detail["conversation"]["status"] == "annotated"
    assert detail["conversation"]["topic_id"] == topics["SQL"]
    assert detail["conversation"]["user_rating"] == "satisfactory"
    by_id = {m["id"]: m for m in detail["messages"]}
    assert by_id[answer]["body"] == "Delete node_modulez"  # the original is kept
    assert by_id[answer]["corrected_body"] == "Delete node_modules"
    assert (by_id[answer]["my_verdict"], by_id[answer]["good"]) == ("good", 1)
    assert by_id[question]["excluded"] is True
    [annotation] = detail["annotations"]
    assert (annotation["rating"], annotation["notes"], annotation["annotator_id"]) == (
        "poor",
        "typo in the answer",
        a.id,
    )

    # Removing the correction: the original text again.
    cleared = api.client.patch(
        f"/api/messages/{answer}/correction", json={"text": None}, headers=api.auth(a)
    )
    assert cleared.json()["corrected_body"] is None

    actions = [(action, actor, target) for action, actor, target, _ in audit_actions(api)]
    assert ("conversation.reclassified", a.id, built.id) in actions
    assert ("conversation.annotated", a.id, built.id) in actions
    assert ("message.excluded", a.id, question) in actions
    assert ("turn.rated", a.id, answer) in actions
    corrections = [
        detail for action, _, target, detail in audit_actions(api) if action == "message.corrected"
    ]
    assert [(c["previous"], c["text"]) for c in corrections] == [
        (None, "Delete node_modules"),
        ("Delete node_modules", None),
    ]


def test_annotating_an_open_conversation_is_refused(api: Api, people: dict[str, User]) -> None:
    from chatforge.store.models import ConversationStatus

    built = build(
        api, people["user"], [Said(people["user"], "hi")], status=ConversationStatus.active
    )
    response = api.client.post(
        f"/api/conversations/{built.id}/annotations",
        json={"rating": "excellent"},
        headers=api.auth(people["annotator"]),
    )
    assert (response.status_code, response.json()["code"]) == (409, "conversation_not_finished")


def test_delete_leaves_an_audit_record(api: Api, people: dict[str, User]) -> None:
    p = people
    built = build(api, p["user"], [Said(p["user"], "delete me please"), Said(p["moderator"], "ok")])
    forbidden = api.client.delete(f"{LIST}/{built.id}", headers=api.auth(p["moderator"]))
    assert forbidden.status_code == 403
    response = api.client.delete(f"{LIST}/{built.id}", headers=api.auth(p["annotator"]))
    assert response.status_code == 204
    assert api.client.get(f"{LIST}/{built.id}", headers=api.auth(p["admin"])).status_code == 404
    assert ids(api, p["annotator"], q="delete") == []
    [(action, actor, target, detail)] = [r for r in audit_actions(api) if r[0].endswith("deleted")]
    assert (action, actor, target) == ("conversation.deleted", p["annotator"].id, built.id)
    assert (detail["messages"], detail["owner_id"], detail["kind"]) == (2, p["user"].id, "support")


def test_dashboard_progress_and_kappa(
    api: Api, people: dict[str, User], topics: dict[str, int]
) -> None:
    p = people
    api.client.post(
        "/api/annotation/labels", json={"name": "helpful"}, headers=api.auth(p["admin"])
    )
    convs = [
        build(api, p["user"], [Said(p["user"], f"q{n}")], topic_id=topics["Git"]).id
        for n in range(4)
    ]
    build(api, p["user"], [Said(p["user"], "later")], topic_id=topics["SQL"])
    first = ["excellent", "poor", "excellent", "poor"]
    second = ["excellent", "poor", "poor", "poor"]
    for annotator, ratings in ((p["annotator"], first), (p["annotator2"], second)):
        for n, (cid, rating) in enumerate(zip(convs, ratings, strict=True)):
            body: dict[str, Any] = {"rating": rating, "labels": ["helpful"] if n < 2 else []}
            api.client.post(
                f"/api/conversations/{cid}/annotations", json=body, headers=api.auth(annotator)
            )
    board = api.client.get("/api/annotation/dashboard", headers=api.auth(p["annotator"])).json()
    assert (board["to_do"], board["done"]) == (1, 4)
    assert board["topics"] == [
        {"topic": "Git", "to_do": 0, "done": 4},
        {"topic": "SQL", "to_do": 1, "done": 0},
    ]
    assert sorted(a["conversations"] for a in board["annotators"]) == [4, 4]
    # po = 3/4; pe = (2/4 * 1/4) + (2/4 * 3/4) = 1/2; kappa = (0.75 - 0.5) / 0.5 = 0.5
    assert board["rating"] == {"question": "rating", "kappa": 0.5, "pairs": 1, "items": 4}
    assert board["labels"] == [{"question": "helpful", "kappa": 1.0, "pairs": 1, "items": 4}]
    assert [pair["rating_kappa"] for pair in board["pairs"]] == [0.5]
