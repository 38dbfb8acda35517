"""A real chatforge server and headless Chromium for the browser tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from chatforge.store.models import Role, User
from tests.factories import PASSWORD, make_user, with_context
from tests.servers import SECRET, LiveServer, chatforge_server, missing

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
TIMEOUT_MS = 10_000  # the one timeout unit of the browser tests


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with chatforge_server(tmp_path_factory.mktemp("e2e")) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope: Playwright's sync API keeps an event loop running in the main thread while
    # it is started, which would break the asyncio tests collected after the browser tests.
    if not CHROMIUM.exists():
        missing("Chromium not found at /usr/bin/chromium: apt-get install chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser: Browser, live_server: LiveServer) -> Iterator[Callable[..., Page]]:
    """Open a page in a fresh browser context (own cookies), closed after the test."""
    contexts: list[BrowserContext] = []

    def open_page(width: int = 1280, height: int = 800) -> Page:
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    expect.set_options(timeout=TIMEOUT_MS)
    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page()


@pytest.fixture
def account(live_server: LiveServer) -> Callable[[Role], User]:
    """Create an account of a role in the live server's database."""
    data_dir = Path(live_server.env["CHATFORGE_DATA_DIR"])

    def create(role: Role = Role.user) -> User:
        return with_context(data_dir, lambda ctx: make_user(ctx, role), secret_key=SECRET)

    return create


def log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("who")).to_be_visible()


def nav_links(page: Page) -> list[str]:
    return page.get_by_role("navigation", name="Main").get_by_role("link").all_inner_texts()
