"""An annotator rates a conversation in the browser and it leaves the to-do list (N1, N2)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from chatforge.context import AppContext
from chatforge.store.models import Rating, Role, User
from tests.corpus import Said, finished_conversation
from tests.e2e.conftest import log_in
from tests.factories import with_context
from tests.servers import SECRET, LiveServer

pytestmark = pytest.mark.browser


def test_rating_a_conversation_takes_it_off_the_to_do_list(
    new_page: Callable[..., Page], account: Callable[[Role], User], live_server: LiveServer
) -> None:
    user, moderator, annotator = (
        account(Role.user),
        account(Role.moderator),
        account(Role.annotator),
    )

    async def build(ctx: AppContext) -> int:
        built = await finished_conversation(
            ctx,
            user,
            [Said(user, "How do I undo a commit?"), Said(moderator, "git revert <sha>")],
            assignee=moderator,
            user_rating=Rating.satisfactory,
        )
        return built.id

    conversation_id = with_context(
        Path(live_server.env["CHATFORGE_DATA_DIR"]), build, secret_key=SECRET
    )
    page = new_page()
    log_in(page, annotator.username)
    page.goto("/annotate")
    row = page.get_by_test_id("todo").locator(f'tr[data-conversation="{conversation_id}"]')
    expect(row).to_be_visible()

    row.get_by_role("link", name=f"#{conversation_id}").click()
    expect(page).to_have_url(re.compile(rf"/annotate/{conversation_id}$"))
    expect(page.get_by_test_id("user-rating")).to_contain_text("satisfactory")
    # Markup in a message is shown as text, never run.
    expect(page.locator("p.prewrap", has_text="git revert <sha>")).to_be_visible()

    form = page.get_by_test_id("annotation-form")
    form.get_by_label("Excellent").check()
    form.get_by_label("Notes").fill("Short and right.")
    form.get_by_role("button", name="Save annotation").click()

    expect(page).to_have_url(re.compile(r"/annotate$"))
    expect(page.get_by_role("status")).to_contain_text(f"#{conversation_id} rated excellent")
    expect(page.locator(f'tr[data-conversation="{conversation_id}"]')).to_have_count(0)

    # It is still there among the annotated ones, with its rating.
    page.get_by_label("Status").select_option("annotated")
    page.get_by_role("button", name="Filter").click()
    annotated = page.locator(f'tr[data-conversation="{conversation_id}"]')
    expect(annotated).to_contain_text("excellent (1)")
