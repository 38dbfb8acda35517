"""The annotation pages (N1-N4): correcting, excluding and rating turns through forms, deleting
after a confirmation, the labels admin page, the dashboard and the dataset download."""

from __future__ import annotations

import json
from html import unescape

from chatforge.store.models import Role
from tests.conftest import Api
from tests.corpus import Said, finished_conversation


def test_annotation_view_forms(api: Api) -> None:
    admin, annotator = api.user(Role.admin), api.user(Role.annotator)
    user, moderator = api.user(), api.user(Role.moderator)
    built = api.call(
        finished_conversation,
        api.ctx,
        user,
        [Said(user, "<script>alert(1)</script> help"), Said(moderator, "Restart it")],
    )
    question, answer = built.message_ids

    api.browse_as(admin)
    assert api.form("/admin/labels", {"name": "off-topic"}).status_code == 303
    assert "off-topic" in api.client.get("/admin/labels").text

    api.browse_as(annotator)
    page = api.client.get(f"/annotate/{built.id}")
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; help" in page.text
    assert 'value="off-topic"' in page.text

    base = f"/annotate/{built.id}/messages"
    assert (
        api.form(f"{base}/{answer}/correction", {"text": "Restart it, then retry"}).status_code
        == 303
    )
    assert api.form(f"{base}/{question}/exclusion", {"excluded": "true"}).status_code == 303
    assert api.form(f"{base}/{answer}/verdict", {"verdict": "good"}).status_code == 303
    page = unescape(api.client.get(f"/annotate/{built.id}").text)
    assert "Corrected:</strong> Restart it, then retry" in page
    assert "<del>Restart it</del>" in page  # the original stays, shown struck through
    assert "Include in training" in page
    assert "Good (1)" in page

    rated = api.form(f"/annotate/{built.id}/annotation", {"rating": "good-ish", "notes": "x"})
    assert rated.headers["location"] == f"/annotate/{built.id}"  # unknown rating: back, no 500
    saved = api.form(f"/annotate/{built.id}/annotation", {"rating": "poor", "labels": "off-topic"})
    assert saved.headers["location"] == "/annotate"
    assert (
        "<strong>1</strong> annotated, <strong>0</strong> to do"
        in api.client.get("/annotate/dashboard").text
    )

    download = api.client.get("/annotate/export/download", params={"format": "openai-jsonl"})
    assert download.headers["content-disposition"] == (
        'attachment; filename="chatforge-openai-jsonl.jsonl"'
    )
    assert json.loads(download.text) == {
        "messages": [{"role": "assistant", "content": "Restart it, then retry"}]
    }

    confirm = api.client.get(f"/annotate/{built.id}/delete")
    assert "Yes, delete" in confirm.text
    assert api.form(f"/annotate/{built.id}/delete").headers["location"] == "/annotate"
    assert api.client.get(f"/annotate/{built.id}").status_code == 404


def test_search_error_is_shown_on_the_page(api: Api) -> None:
    api.browse_as(api.user(Role.annotator))
    page = api.client.get("/annotate", params={"q": "((("})
    assert page.status_code == 200
    assert "Search for at least one word." in page.text
