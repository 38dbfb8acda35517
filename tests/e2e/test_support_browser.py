"""A support conversation in two browsers: the user and the moderator (S1-S5, R1)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from chatforge.context import AppContext
from chatforge.store.models import Role, User
from tests.e2e.conftest import log_in
from tests.factories import make_user, unique_name, with_context
from tests.servers import SECRET, LiveServer

pytestmark = pytest.mark.browser


def make_topic(live_server: LiveServer) -> str:
    name = unique_name("Topic ")

    async def create(ctx: AppContext) -> None:
        admin = await make_user(ctx, Role.admin)
        await ctx.topics.create(admin, name=name, description="Questions about it")

    with_context(Path(live_server.env["CHATFORGE_DATA_DIR"]), create, secret_key=SECRET)
    return name


def test_user_and_moderator_chat_live(
    new_page: Callable[..., Page],
    account: Callable[[Role], User],
    live_server: LiveServer,
) -> None:
    topic = make_topic(live_server)
    user, moderator = account(Role.user), account(Role.moderator)
    mod_page, user_page = new_page(), new_page()

    log_in(mod_page, moderator.username)
    mod_page.goto("/moderate")
    pending = mod_page.get_by_test_id("pending")

    log_in(user_page, user.username)
    user_page.goto("/support")
    expect(user_page.get_by_test_id("moderators-online")).to_contain_text(
        re.compile(r"\d+ moderators? online")
    )
    user_page.get_by_role("button", name=f"Start a conversation about {topic}").click()
    expect(user_page.get_by_test_id("chat-status")).to_have_text("pending")
    expect(user_page.get_by_test_id("queue-position")).to_contain_text("in the queue")

    # The moderator's queue shows it without a reload.
    row = pending.locator("tr", has_text=user.display_name)
    expect(row).to_be_visible()
    row.get_by_role("button", name="Claim").click()
    expect(mod_page).to_have_url(re.compile(r"/support/conversations/\d+$"))

    # The user is told at once.
    expect(user_page.get_by_test_id("chat-status")).to_have_text("active")

    user_page.get_by_label("Message").fill("How do I undo my last commit?")
    user_page.get_by_label("Message").press("Enter")
    expect(mod_page.get_by_test_id("messages")).to_contain_text("How do I undo my last commit?")

    mod_page.get_by_label("Message").press_sequentially("git re")
    expect(user_page.locator("#typing")).to_contain_text("is typing")
    mod_page.get_by_label("Message").fill("git reset --soft HEAD~1")
    mod_page.get_by_role("button", name="Send").click()
    expect(user_page.get_by_test_id("messages")).to_contain_text("git reset --soft HEAD~1")
    expect(user_page.locator("#typing")).to_have_text("")

    # History survives a reload, in order.
    user_page.reload()
    expect(user_page.get_by_test_id("messages").locator("li .body")).to_have_text(
        ["How do I undo my last commit?", "git reset --soft HEAD~1"]
    )

    mod_page.get_by_test_id("end").click()
    expect(mod_page).to_have_url(re.compile(r"/moderate$"))
    rating = user_page.get_by_test_id("rating-form")
    expect(rating).to_be_visible()
    expect(user_page.get_by_test_id("chat-status")).to_have_text("done")
    rating.get_by_label("Excellent").check()
    rating.get_by_label("Comment").fill("Spot on")
    rating.get_by_role("button", name="Send rating").click()
    expect(user_page.locator(".flash")).to_contain_text("Thank you for your rating")
    expect(user_page.get_by_text("rated excellent")).to_be_visible()


def test_second_start_returns_to_the_open_conversation(
    page: Page, account: Callable[[Role], User], live_server: LiveServer
) -> None:
    topic = make_topic(live_server)
    user = account(Role.user)
    log_in(page, user.username)
    page.goto("/support")
    page.get_by_role("button", name=f"Start a conversation about {topic}").click()
    first = page.url
    page.goto("/support")
    expect(page.get_by_role("link", name="Return to it")).to_be_visible()
    page.get_by_role("link", name="Return to it").click()
    assert page.url == first
