"""Hand-off end to end (B4) and the web chat widget (B2), in Chromium against a real server.

A signed WhatsApp message asks the bot for a mentor; a moderator sees it arrive in the queue
live, with its channel, claims it and answers in the browser; Twilio's (fake) Messages API
receives the answer, and the user's next WhatsApp message appears in the moderator's browser.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from chatforge.bots.transcript import find_bot_conversation
from chatforge.context import AppContext
from chatforge.store.models import Role, User
from chatforge.store.types import utcnow
from tests.e2e.conftest import TIMEOUT_MS, log_in
from tests.factories import make_user, with_context
from tests.platforms import (
    TWILIO_SID,
    TWILIO_TOKEN,
    FakePlatform,
    fake_platform,
    platform_env,
    twilio_signature,
    whatsapp_form,
)
from tests.servers import SECRET, LiveServer, chatforge_server

pytestmark = pytest.mark.browser

WHATSAPP = "/channels/twilio/whatsapp"


@pytest.fixture(scope="module")
def platform() -> Iterator[FakePlatform]:
    with fake_platform() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, platform: FakePlatform
) -> Iterator[LiveServer]:
    env = {f"CHATFORGE_{key.upper()}": value for key, value in platform_env(platform.url).items()}
    with chatforge_server(tmp_path_factory.mktemp("handoff"), **env) as live:
        yield live


@pytest.fixture
def open_page(browser: Browser, server: LiveServer) -> Iterator[Callable[[], Page]]:
    contexts: list[BrowserContext] = []

    def new() -> Page:
        context = browser.new_context(base_url=server.url)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    expect.set_options(timeout=TIMEOUT_MS)
    yield new
    for context in contexts:
        context.close()


def account(server: LiveServer, role: Role) -> User:
    data_dir = Path(server.env["CHATFORGE_DATA_DIR"])
    return with_context(data_dir, lambda ctx: make_user(ctx, role), secret_key=SECRET)


def send_whatsapp(server: LiveServer, text: str, sender: str, name: str) -> list[str]:
    form = whatsapp_form(text, sender=sender, ProfileName=name)
    url = server.url + WHATSAPP
    response = httpx.post(
        url,
        content=urlencode(form),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url, form),
        },
    )
    assert response.status_code == 200, response.text
    return [node.text or "" for node in ET.fromstring(response.text).findall("Message")]


def test_whatsapp_mentor_to_a_moderator_in_the_browser_and_back_through_twilio(
    open_page: Callable[[], Page], server: LiveServer, platform: FakePlatform
) -> None:
    moderator = account(server, Role.moderator)
    mod_page = open_page()
    log_in(mod_page, moderator.username)
    mod_page.goto("/moderate")
    expect(mod_page.get_by_test_id("pending")).to_contain_text("Nobody is waiting.")

    replies = send_whatsapp(server, "mentor", "+27825550101", "Sipho")
    assert replies[-1] == "A mentor will answer you here shortly; you are number 1 in the queue."

    # The queue shows it live, with its channel.
    row = mod_page.get_by_test_id("pending").locator("tr", has_text="Sipho")
    expect(row).to_contain_text("whatsapp")
    row.get_by_role("button", name="Claim").click()
    expect(mod_page).to_have_url(re.compile(r"/support/conversations/\d+$"))
    expect(mod_page.locator("#chat-with")).to_have_text("with Sipho via whatsapp")

    mod_page.get_by_label("Message").fill("Hello Sipho, what are you stuck on?")
    mod_page.get_by_role("button", name="Send").click()
    expect(mod_page.get_by_test_id("messages")).to_contain_text("what are you stuck on?")

    to_twilio = [r for r in platform.wait_for(2) if r.form().get("To") == "whatsapp:+27825550101"]
    assert to_twilio[-1].path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert to_twilio[-1].form()["Body"] == (
        f"{moderator.display_name}: Hello Sipho, what are you stuck on?"
    )

    # The user's next WhatsApp message reaches the moderator's page live, not the bot.
    assert send_whatsapp(server, "Recursion in Python", "+27825550101", "Sipho") == []
    expect(mod_page.get_by_test_id("messages").locator("li .body")).to_have_text(
        ["Hello Sipho, what are you stuck on?", "Recursion in Python"]
    )


def test_the_web_widget_talks_to_the_bot_live_and_hands_off(
    open_page: Callable[[], Page], server: LiveServer
) -> None:
    user = account(server, Role.user)
    page = open_page()
    log_in(page, user.username)
    page.goto("/chat")
    expect(page.get_by_role("heading", name="Chat with challenge")).to_be_visible()

    page.get_by_label("Message").fill("help")
    page.get_by_label("Message").press("Enter")
    messages = page.get_by_test_id("messages")
    expect(messages).to_contain_text("Send a category and a level")
    expect(messages.locator("li.mine .body")).to_have_text(["help"])

    page.get_by_label("Message").fill("mentor")
    page.get_by_role("button", name="Send").click()
    handoff = page.get_by_test_id("handoff")
    expect(handoff).to_contain_text("A mentor will answer you on the support page shortly")
    handoff.get_by_role("link", name="Go to the conversation").click()
    expect(page.get_by_test_id("chat-status")).to_have_text("pending")

    # The chat survives a reload: history from the page, then live again.
    page.goto("/chat")
    expect(messages.locator("li.mine .body")).to_have_text(["help", "mentor"])


def test_the_web_widget_goes_on_in_a_new_chat_after_a_quiet_one_ended(
    open_page: Callable[[], Page], server: LiveServer
) -> None:
    user = account(server, Role.user)
    page = open_page()
    log_in(page, user.username)
    page.goto("/chat")
    page.get_by_label("Message").fill("help")
    page.get_by_label("Message").press("Enter")
    messages = page.get_by_test_id("messages")
    expect(messages).to_contain_text("Send a category and a level")

    # The chat has been quiet for longer than the server waits (its sweep, run here early).
    async def end_the_chat(ctx: AppContext) -> bool:
        async with ctx.db.read() as session:
            chat = await find_bot_conversation(session, "challenge", user.id)
        idle = timedelta(minutes=ctx.settings.bot_chat_idle_minutes + 1)
        return chat is not None and chat in await ctx.bot_chats.end_idle(utcnow() + idle)

    data_dir = Path(server.env["CHATFORGE_DATA_DIR"])
    assert with_context(data_dir, end_the_chat, secret_key=SECRET)

    # The next message opens a new chat, and the page follows it live.
    page.get_by_label("Message").fill("python easy")
    page.get_by_label("Message").press("Enter")
    expect(messages.locator("li.mine .body")).to_have_text(["help", "python easy"])
    # The bot answered in the new chat (the one answer to "help" was all there was).
    expect(messages.locator("li:not(.mine)")).not_to_have_count(1)

    # A reload shows the new chat only: the ended one went to the annotators.
    page.reload()
    expect(messages.locator("li.mine .body")).to_have_text(["python easy"])
    expect(messages.locator("li:not(.mine)")).not_to_have_count(0)
