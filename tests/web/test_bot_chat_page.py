"""The web chat widget's page (B2): history, the no-JavaScript form, and a hand-off link."""

from __future__ import annotations

import re
from html import unescape

from chatforge.store.models import ConversationKind, Role
from tests.conftest import Api


def message_bodies(html: str) -> list[str]:
    return [unescape(b) for b in re.findall(r'<span class="body">(.*?)</span>', html, re.S)]


def test_the_page_needs_a_login(api: Api) -> None:
    response = api.client.get("/chat", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


def test_talking_to_the_bot_without_javascript_and_handing_off(api: Api) -> None:
    user = api.user(Role.user)
    api.browse_as(user)
    page = api.client.get("/chat")
    assert page.status_code == 200
    assert 'data-bot="challenge"' in page.text
    assert 'data-conversation-id=""' in page.text
    assert "<script>" not in page.text  # data goes in data-* attributes: the CSP has no inline

    sent = api.form("/chat", {"body": "help"})
    assert (sent.status_code, sent.headers["location"]) == (303, "/chat")
    page = api.client.get("/chat")
    conversation_id = re.search(r'data-conversation-id="(\d+)"', page.text)
    assert conversation_id is not None
    bodies = message_bodies(page.text)
    assert bodies[0] == "help"
    assert bodies[2].startswith("Send a category and a level")
    assert f'data-last-seq="{len(bodies)}"' in page.text

    handed = api.form("/chat", {"body": "mentor"})
    assert handed.status_code == 303
    page = api.client.get("/chat")
    assert "A mentor will answer you on the support page shortly" in unescape(page.text)
    [support] = api.call(lambda: api.ctx.conversations.visible(user, kind=ConversationKind.support))
    assert support.channel == "web"
    assert f'href="/support/conversations/{support.id}"' in page.text

    refused = api.form("/chat", {"body": "   "})
    assert refused.headers["location"] == "/chat"
    assert "A message cannot be empty." in unescape(api.client.get("/chat").text)
