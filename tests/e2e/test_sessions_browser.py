"""A live session in three browsers: an instructor and two participants (L1-L10 end to end)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from chatforge.context import AppContext
from chatforge.store.models import Role, User
from tests.factories import make_user, with_context
from tests.servers import LiveServer, chatforge_server

pytestmark = pytest.mark.browser

WAIT_MS = 5000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with chatforge_server(tmp_path_factory.mktemp("sessions-e2e")) as live:
        yield live


@dataclass
class Person:
    user: User
    token: str


def people(server: LiveServer) -> list[Person]:
    async def create(ctx: AppContext) -> list[Person]:
        made = []
        for role in (Role.moderator, Role.user, Role.user):
            user = await make_user(ctx, role)
            made.append(Person(user, ctx.tokens.issue(user.id, user.token_version)))
        return made

    data_dir = Path(server.env["CHATFORGE_DATA_DIR"])
    # Playwright's sync API runs an event loop in this thread; the set-up gets its own thread.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(
            with_context, data_dir, create, secret_key=server.env["CHATFORGE_SECRET_KEY"]
        ).result()


def page_for(browser: Browser, server: LiveServer, person: Person) -> tuple[BrowserContext, Page]:
    context = browser.new_context(base_url=server.url, accept_downloads=True)
    context.add_cookies([{"name": "cf_session", "value": person.token, "url": server.url}])
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    return context, page


def message(page: Page, text: str) -> object:
    return page.locator("#messages li.message", has_text=text)


def test_instructor_and_two_participants_share_a_room(server: LiveServer, browser: Browser) -> None:
    teacher, alice, bob = people(server)
    created = httpx.post(
        f"{server.url}/api/sessions",
        json={"title": "Git in depth"},
        headers={"Authorization": f"Bearer {teacher.token}"},
    )
    assert created.status_code == 201
    room = f"/sessions/{created.json()['id']}"
    contexts = []
    try:
        pages = {}
        for name, person in (("teacher", teacher), ("alice", alice), ("bob", bob)):
            context, page = page_for(browser, server, person)
            contexts.append(context)
            page.goto(room)
            if name != "teacher":
                page.get_by_test_id("join").click()  # the link leads to the join page
            expect(page.locator("#room")).to_be_visible()
            pages[name] = page
        t, a, b = pages["teacher"], pages["alice"], pages["bob"]
        expect(t.locator("#participants li")).to_have_count(3)

        # Messages and a reaction, live for everyone.
        t.fill("#body", "Welcome everyone")
        t.press("#body", "Enter")
        for page in (t, a, b):
            expect(message(page, "Welcome everyone")).to_be_visible()
        message(a, "Welcome everyone").locator("button.reaction[data-emoji='👍']").click()
        for page in (t, a, b):
            expect(
                message(page, "Welcome everyone").locator("button.reaction[data-emoji='👍'] .count")
            ).to_have_text("1")

        # A raised hand appears for everyone.
        b.click("#hand")
        for page in (t, a, b):
            expect(page.locator("#hands li", has_text=bob.user.display_name)).to_be_visible()
        expect(b.locator("#hand")).to_have_text("Lower hand")

        # A private message reaches its recipient only.
        a.select_option("#recipient", str(teacher.user.id))
        a.fill("#body", "I have a private question")
        a.press("#body", "Enter")
        expect(message(t, "I have a private question")).to_be_visible()
        expect(message(t, "I have a private question")).to_have_class("message private")
        b.fill("#body", "Bob was here")
        b.press("#body", "Enter")
        expect(message(a, "Bob was here")).to_be_visible()
        expect(message(t, "Bob was here")).to_be_visible()
        # Bob saw his own later message, so the private one would have arrived before it.
        expect(message(b, "Bob was here")).to_be_visible()
        expect(message(b, "I have a private question")).to_have_count(0)

        # The instructor deletes a message (after confirming).
        t.once("dialog", lambda dialog: dialog.accept())
        message(t, "Bob was here").get_by_test_id("delete").click()
        for page in (t, a, b):
            expect(page.locator("#messages li.deleted")).to_have_count(1)
            expect(message(page, "Bob was here")).to_have_count(0)

        # The instructor mutes Alice: her composer is disabled, with the reason.
        t.select_option("#mute-user", str(alice.user.id))
        t.fill("#mute-minutes", "10")
        t.fill("#mute-reason", "Too many questions at once")
        t.click("#mute")
        expect(a.locator("#body")).to_be_disabled()
        expect(a.locator("#send")).to_be_disabled()
        expect(a.get_by_test_id("muted-notice")).to_contain_text("Too many questions at once")
        expect(b.locator("#body")).to_be_enabled()
        # A reload keeps her muted.
        a.reload()
        expect(a.locator("#body")).to_be_disabled()

        # The instructor downloads the CSV export.
        with t.expect_download() as download_info:
            t.get_by_test_id("export-csv").click()
        download = download_info.value
        assert download.suggested_filename.endswith(".csv")
        rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
        bodies = [row["body"] for row in rows]
        assert bodies == ["Welcome everyone", "(message deleted)"]
    finally:
        for context in contexts:
            context.close()
