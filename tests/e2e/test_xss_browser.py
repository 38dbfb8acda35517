"""Hostile text in messages, display names, topics and session titles shows literally in every
page that displays it, and never runs: no dialog opens, and pages forbid inline scripts."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Dialog, Page

from chatforge.api.deps import SESSION_COOKIE
from chatforge.store.models import Role, User
from tests.e2e.conftest import TIMEOUT_MS
from tests.factories import PASSWORD
from tests.servers import LiveServer

pytestmark = pytest.mark.browser

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">javascript:alert(1)</a>',
    '"><svg onload=alert(1)>',
]
# A display name is one of them (64 characters at most); so is each topic name and title.
HOSTILE_NAME = '"><svg onload=alert(1)>'


def token(server: LiveServer, user: User) -> str:
    response = httpx.post(
        f"{server.url}/api/auth/token", json={"username": user.username, "password": PASSWORD}
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def test_hostile_text_shows_literally_and_never_runs(
    live_server: LiveServer,
    account: Callable[[Role], User],
    new_page: Callable[..., Page],
) -> None:
    author, reader = account(Role.user), account(Role.user)
    moderator, admin = account(Role.moderator), account(Role.admin)
    newcomer = account(Role.user)  # no conversation yet: sees the topic list
    tokens = {u.id: token(live_server, u) for u in (author, reader, moderator, admin, newcomer)}

    def api(user: User) -> httpx.Client:
        return httpx.Client(
            base_url=live_server.url, headers={"Authorization": f"Bearer {tokens[user.id]}"}
        )

    with api(author) as as_author, api(moderator) as as_mod, api(admin) as as_admin:
        assert as_author.patch("/api/me", json={"display_name": HOSTILE_NAME}).status_code == 200
        topics = [
            as_admin.post("/api/topics", json={"name": f"{p} {i}"}).json()["id"]
            for i, p in enumerate(PAYLOADS)
        ]
        support = as_author.post("/api/conversations", json={"topic_id": topics[0]}).json()["id"]
        queued = httpx.post(  # a second author, waiting in the moderators' queue
            f"{live_server.url}/api/conversations",
            json={"topic_id": topics[1]},
            headers={"Authorization": f"Bearer {tokens[reader.id]}"},
        )
        assert queued.status_code == 201, queued.text
        assert as_mod.post(f"/api/conversations/{support}/claim").status_code == 200
        room = as_mod.post("/api/sessions", json={"title": PAYLOADS[0]}).json()["id"]
        assert as_author.post(f"/api/sessions/{room}/join").status_code == 200
        for index, payload in enumerate(PAYLOADS):
            for conversation in (support, room):
                sent = as_author.post(
                    f"/api/conversations/{conversation}/messages",
                    json={"body": payload, "client_id": f"x{conversation}-{index}"},
                )
                assert sent.status_code in (200, 201), sent.text
    with api(reader) as as_reader:
        assert as_reader.post(f"/api/sessions/{room}/join").status_code == 200

    dialogs: list[str] = []

    def open_as(user: User) -> Page:
        page = new_page()
        page.context.add_cookies(
            [{"name": SESSION_COOKIE, "value": tokens[user.id], "url": live_server.url}]
        )

        def on_dialog(dialog: Dialog) -> None:
            dialogs.append(f"{page.url}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        return page

    views: list[tuple[User, str, list[str]]] = [
        (moderator, f"/support/conversations/{support}", [*PAYLOADS, HOSTILE_NAME]),
        (moderator, "/moderate", [HOSTILE_NAME.strip(), PAYLOADS[1]]),
        (reader, f"/sessions/{room}", [*PAYLOADS, HOSTILE_NAME]),
        (reader, "/sessions", [PAYLOADS[0]]),
        (newcomer, "/support", PAYLOADS),
        (newcomer, "/", PAYLOADS),
        (author, "/support", PAYLOADS[:1]),
        (admin, "/admin/users", [HOSTILE_NAME]),
        (admin, f"/admin/users/{author.id}", [HOSTILE_NAME]),
        (admin, "/admin/topics", PAYLOADS),
    ]
    for viewer, path, expected in views:
        page = open_as(viewer)
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        policy = response.headers["content-security-policy"]
        script_src = next(
            (d for d in policy.split(";") if d.strip().startswith(("script-src", "default-src"))),
            "",
        )
        assert "unsafe-inline" not in script_src and "unsafe-eval" not in script_src, policy
        page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
        text = page.locator("body").inner_text()
        missing_texts = [p for p in expected if p not in text]
        assert not missing_texts, f"{path} does not show {missing_texts} literally"
        # No element the payloads describe was created, and no javascript: link is live.
        assert page.locator("main svg[onload], main img[onerror], main script").count() == 0
        assert page.locator('main a[href^="javascript:"]').count() == 0, path
        page.close()
    assert dialogs == []
