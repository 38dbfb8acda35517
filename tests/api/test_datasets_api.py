"""Dataset exports (N4, N6) over REST and the CLI, checked field by field on conversations with
corrections, an exclusion, a private message and deleted messages; every JSON format loads
with ``datasets.load_dataset("json")``."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from chatforge.cli import app as cli
from chatforge.settings import Settings
from chatforge.store.models import ConversationKind, Rating, Role, User
from tests.conftest import Api
from tests.corpus import Said, delete_message, finished_conversation
from tests.servers import SECRET

EXPORT = "/api/datasets/export"
HIDDEN = ("secret hint", "You're welcome", "spam spam")


@dataclass
class Corpus:
    support: int
    session: int
    s: list[int]
    t: list[int]
    annotator: User
    topic_id: int


@pytest.fixture
def corpus(api: Api) -> Corpus:
    admin, annotator = api.user(Role.admin), api.user(Role.annotator)
    user, user2, moderator = api.user(), api.user(), api.user(Role.moderator)
    topic_id = api.client.post("/api/topics", json={"name": "Git"}, headers=api.auth(admin)).json()[
        "id"
    ]
    api.client.post("/api/annotation/labels", json={"name": "helpful"}, headers=api.auth(admin))

    async def build() -> tuple[list[int], list[int], int, int]:
        s = await finished_conversation(
            api.ctx,
            user,
            [
                Said(user, "Hi, mail me at jane@example.com"),
                Said(moderator, "Hello Jane"),
                Said(moderator, "Call +1 415 555 0100"),
                Said(user, "ugh whatever"),
                Said(user, "Thanks"),
                Said(moderator, "You're welcome"),
                Said(moderator, "Bye"),
            ],
            assignee=moderator,
            topic_id=topic_id,
            user_rating=Rating.excellent,
        )
        t = await finished_conversation(
            api.ctx,
            moderator,
            [
                Said(user, "What is a window function?"),
                Said(moderator, "secret hint", to=user),
                Said(moderator, "It computes over rows."),
                Said(user2, "spam spam"),
            ],
            kind=ConversationKind.session,
            members=[user, user2],
        )
        await delete_message(api.ctx, s.message_ids[5], moderator)
        await delete_message(api.ctx, t.message_ids[3], moderator)
        return s.message_ids, t.message_ids, s.id, t.id

    s, t, support, session = api.client.portal.call(build)  # type: ignore[union-attr]
    headers = api.auth(annotator)
    for message_id, body in ((s[1], {"text": "Hello Jane!"}), (s[3], {"excluded": True})):
        response = api.client.patch(
            f"/api/messages/{message_id}/correction", json=body, headers=headers
        )
        assert response.status_code == 200, response.text
    for message_id, verdict in ((s[1], "bad"), (s[6], "good")):
        api.client.put(
            f"/api/messages/{message_id}/turn-rating", json={"verdict": verdict}, headers=headers
        )
    api.client.post(
        f"/api/conversations/{support}/annotations",
        json={"rating": "excellent", "labels": ["helpful"]},
        headers=headers,
    )
    return Corpus(support, session, s, t, annotator, topic_id)


def export(api: Api, corpus: Corpus, fmt: str, **params: Any) -> str:
    response = api.client.get(
        EXPORT, params={"format": fmt, **params}, headers=api.auth(corpus.annotator)
    )
    assert response.status_code == 200, response.text
    for hidden in HIDDEN:
        assert hidden not in response.text
    return response.text


def lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines()]


S_CHAT = [
    {"role": "user", "content": "Hi, mail me at jane@example.com"},
    {"role": "assistant", "content": "Hello Jane!\nCall +1 415 555 0100"},
    {"role": "user", "content": "Thanks"},
    {"role": "assistant", "content": "Bye"},
]
T_CHAT = [
    {"role": "user", "content": "What is a window function?"},
    {"role": "assistant", "content": "It computes over rows."},
]


def test_openai_jsonl_and_trl_conversational(api: Api, corpus: Corpus) -> None:
    for fmt in ("openai-jsonl", "trl-conversational"):
        assert lines(export(api, corpus, fmt)) == [{"messages": S_CHAT}, {"messages": T_CHAT}]


def test_filters_min_rating_topic_and_redaction(api: Api, corpus: Corpus) -> None:
    assert lines(export(api, corpus, "openai-jsonl", min_rating="excellent")) == [
        {"messages": S_CHAT}
    ]
    assert lines(export(api, corpus, "openai-jsonl", topic_id=corpus.topic_id)) == [
        {"messages": S_CHAT}
    ]
    assert lines(export(api, corpus, "openai-jsonl", kind="session")) == [{"messages": T_CHAT}]
    assert lines(export(api, corpus, "openai-jsonl", q="window")) == [{"messages": T_CHAT}]
    redacted = lines(export(api, corpus, "openai-jsonl", redact_pii="true", kind="support"))
    assert [m["content"] for m in redacted[0]["messages"][:2]] == [
        "Hi, mail me at [email]",
        "Hello Jane!\nCall [phone]",
    ]


def test_sharegpt(api: Api, corpus: Corpus) -> None:
    data = json.loads(export(api, corpus, "sharegpt"))
    assert data[0] == {
        "id": f"chatforge-{corpus.support}",
        "conversations": [
            {"from": "human", "value": "Hi, mail me at jane@example.com"},
            {"from": "gpt", "value": "Hello Jane!\nCall +1 415 555 0100"},
            {"from": "human", "value": "Thanks"},
            {"from": "gpt", "value": "Bye"},
        ],
    }
    assert [turn["from"] for turn in data[1]["conversations"]] == ["human", "gpt"]


def test_chatterbot_yaml(api: Api, corpus: Corpus) -> None:
    document = yaml.safe_load(export(api, corpus, "chatterbot"))
    assert document == {
        "categories": ["Git"],
        "conversations": [
            [
                "Hi, mail me at jane@example.com",
                "Hello Jane!\nCall +1 415 555 0100",
                "Thanks",
                "Bye",
            ],
            ["What is a window function?", "It computes over rows."],
        ],
    }
    empty = yaml.safe_load(export(api, corpus, "chatterbot", channel="nowhere"))
    assert empty == {"categories": ["Git"], "conversations": []}


def test_csv(api: Api, corpus: Corpus) -> None:
    rows = list(csv.DictReader(io.StringIO(export(api, corpus, "csv"), newline="")))
    s, t = corpus.s, corpus.t
    assert [(int(r["message_id"]), int(r["turn"]), r["role"]) for r in rows] == [
        (s[0], 1, "user"),
        (s[1], 2, "assistant"),
        (s[2], 2, "assistant"),
        (s[4], 3, "user"),
        (s[6], 4, "assistant"),
        (t[0], 1, "user"),
        (t[2], 2, "assistant"),
    ]
    corrected = rows[1]
    assert (corrected["text"], corrected["original_text"], corrected["corrected"]) == (
        "Hello Jane!",
        "Hello Jane",
        "true",
    )
    assert corrected["turn_verdict"] == "bad"
    assert rows[4]["turn_verdict"] == "good"
    assert (rows[0]["topic"], rows[0]["user_rating"], rows[0]["rating"], rows[0]["labels"]) == (
        "Git",
        "excellent",
        "excellent",
        "helpful",
    )
    assert rows[0]["conversation_id"] == str(corpus.support)
    assert rows[2]["text"] == "Call +1 415 555 0100"


def test_json(api: Api, corpus: Corpus) -> None:
    support, session = json.loads(export(api, corpus, "json"))
    assert {
        k: v for k, v in support.items() if k not in {"messages", "created_at", "ended_at"}
    } == {
        "id": corpus.support,
        "kind": "support",
        "topic": "Git",
        "channel": "web",
        "user_rating": "excellent",
        "rating": "excellent",
        "labels": ["helpful"],
    }
    second = support["messages"][1]
    assert {k: v for k, v in second.items() if k != "created_at"} == {
        "message_id": corpus.s[1],
        "role": "assistant",
        "text": "Hello Jane!",
        "original": "Hello Jane",
        "corrected": True,
        "verdict": "bad",
    }
    assert [m["message_id"] for m in support["messages"]] == [corpus.s[i] for i in (0, 1, 2, 4, 6)]
    assert [m["message_id"] for m in session["messages"]] == [corpus.t[0], corpus.t[2]]
    assert (session["rating"], session["labels"], session["topic"]) == (None, [], None)


def test_trl_turn_formats(api: Api, corpus: Corpus) -> None:
    first_user = [S_CHAT[0]]
    assert lines(export(api, corpus, "trl-prompt-completion")) == [
        {"prompt": first_user, "completion": [S_CHAT[1]]},
        {"prompt": S_CHAT[:3], "completion": [S_CHAT[3]]},
        {"prompt": T_CHAT[:1], "completion": [T_CHAT[1]]},
    ]
    assert lines(export(api, corpus, "trl-preference")) == [
        {
            "prompt": first_user,
            "chosen": [S_CHAT[1]],
            "rejected": [{"role": "assistant", "content": "Hello Jane\nCall +1 415 555 0100"}],
        }
    ]
    assert lines(export(api, corpus, "trl-unpaired")) == [
        {"prompt": first_user, "completion": [S_CHAT[1]], "label": False},
        {"prompt": S_CHAT[:3], "completion": [S_CHAT[3]], "label": True},
    ]


def test_label_studio_and_argilla(api: Api, corpus: Corpus) -> None:
    tasks = json.loads(export(api, corpus, "label-studio"))
    assert tasks[0] == {
        "data": {
            "dialogue": [{"author": m["role"], "text": m["content"]} for m in S_CHAT],
            "conversation_id": corpus.support,
            "topic": "Git",
            "user_rating": "excellent",
            "rating": "excellent",
            "labels": "helpful",
        }
    }
    records = lines(export(api, corpus, "argilla"))
    assert records[0] == {
        "id": f"chatforge-{corpus.support}",
        "chat": S_CHAT,
        "rating": "excellent",
        "labels": ["helpful"],
        "topic": "Git",
        "kind": "support",
        "user_rating": "excellent",
    }
    assert records[1]["chat"] == T_CHAT


JSON_FORMATS = [
    "openai-jsonl",
    "sharegpt",
    "json",
    "trl-conversational",
    "trl-prompt-completion",
    "trl-preference",
    "trl-unpaired",
    "label-studio",
    "argilla",
]


def test_every_json_format_loads_with_hugging_face_datasets(
    api: Api, corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    datasets.disable_progress_bars()
    for fmt in JSON_FORMATS:
        path = tmp_path / f"{fmt}.json"
        path.write_text(export(api, corpus, fmt), encoding="utf-8")
        loaded = datasets.load_dataset(
            "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
        )
        expected = 1 if fmt in {"trl-preference"} else 2
        expected = 3 if fmt == "trl-prompt-completion" else expected
        assert loaded.num_rows == expected, fmt
    pairs = datasets.load_dataset(
        "json",
        data_files=str(tmp_path / "trl-preference.json"),
        split="train",
        cache_dir=str(tmp_path / "cache"),
    )
    assert pairs.column_names == ["prompt", "chosen", "rejected"]
    assert pairs[0]["chosen"][0]["content"] == "Hello Jane!\nCall +1 415 555 0100"


def test_export_is_streamed_in_batches_with_the_same_result(api: Api, corpus: Corpus) -> None:
    whole = {fmt: export(api, corpus, fmt) for fmt in ("json", "csv", "chatterbot", "sharegpt")}
    api.ctx.datasets.batch_size = 1
    for fmt, text in whole.items():
        with api.client.stream(
            "GET", EXPORT, params={"format": fmt}, headers=api.auth(corpus.annotator)
        ) as response:
            assert response.headers["content-disposition"].startswith("attachment;")
            chunks = list(response.iter_text())
        assert "".join(chunks) == text


def test_export_needs_an_annotator_and_a_known_format(api: Api, corpus: Corpus) -> None:
    moderator = api.user(Role.moderator)
    forbidden = api.client.get(EXPORT, params={"format": "csv"}, headers=api.auth(moderator))
    assert forbidden.status_code == 403
    unknown = api.client.get(
        EXPORT, params={"format": "pickle"}, headers=api.auth(corpus.annotator)
    )
    assert unknown.status_code == 422
    bad_search = api.client.get(
        EXPORT, params={"format": "csv", "q": "((("}, headers=api.auth(corpus.annotator)
    )
    assert bad_search.status_code == 400


def test_cli_export_writes_the_same_file(
    api: Api, corpus: Corpus, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATFORGE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CHATFORGE_SECRET_KEY", SECRET)
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        cli, ["export", "--format", "openai-jsonl", "--out", str(out), "--min-rating", "excellent"]
    )
    assert result.exit_code == 0, result.output
    assert "Exported 1 conversations" in result.output
    assert lines(out.read_text(encoding="utf-8")) == [{"messages": S_CHAT}]
