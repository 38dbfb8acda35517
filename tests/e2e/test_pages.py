"""The pages in a real browser, against a real server."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from chatforge.store.models import Role, User
from tests.e2e.conftest import log_in, nav_links
from tests.factories import PASSWORD, unique_name

pytestmark = pytest.mark.browser

Account = Callable[[Role], User]


def expect_flash(page: Page, text: str) -> None:
    # expect() retries until the next page has loaded; a plain read could see the last one.
    expect(page.locator(".flashes .flash")).to_have_text(text)


def test_register_then_log_in_shows_the_users_navigation(page: Page) -> None:
    username = unique_name("reader")
    page.goto("/")
    page.get_by_role("link", name="Register").first.click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Display name").fill("Ada Reader")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Register").click()

    expect(page.get_by_role("heading", name="Hello, Ada Reader")).to_be_visible()
    expect(page.locator(".flashes")).to_contain_text("Welcome, Ada Reader!")
    page.get_by_role("button", name="Log out").click()
    expect(page.locator(".flashes")).to_contain_text("You are logged out.")
    assert nav_links(page) == ["Features"]

    log_in(page, username)

    assert nav_links(page) == ["Home", "Support", "Features", "Profile"]
    expect(page.get_by_test_id("who")).to_contain_text("Ada Reader")
    expect(page.get_by_role("link", name="Topics")).to_have_count(0)
    expect(page.get_by_role("link", name="Users")).to_have_count(0)


def test_wrong_password_shows_a_clear_error(page: Page, account: Account) -> None:
    user = account(Role.user)
    page.goto("/login")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page.get_by_label("Username")).to_have_value(user.username)
    expect(page.get_by_label("Password")).to_have_value("")
    assert nav_links(page) == ["Features"]


def test_admin_adds_edits_deactivates_and_deletes_a_topic(page: Page, account: Account) -> None:
    log_in(page, account(Role.admin).username)
    name = unique_name("Browser topic ")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Topics").click()

    page.get_by_label("Name").fill(name)
    page.get_by_label("Description").fill("Made in Chromium")
    page.get_by_role("button", name="Add topic").click()
    expect_flash(page, f"Topic “{name}” added.")
    row = page.locator(f'tr[data-topic="{name}"]')
    expect(row).to_contain_text("Made in Chromium")
    expect(row).to_contain_text("active")

    row.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", name="Edit topic")).to_be_visible()
    page.get_by_label("Name").fill(f"{name} (edited)")
    page.get_by_role("button", name="Save").click()
    expect_flash(page, f"Topic “{name} (edited)” saved.")
    name = f"{name} (edited)"
    row = page.locator(f'tr[data-topic="{name}"]')

    row.get_by_role("button", name="Deactivate").click()
    expect_flash(page, f"Topic “{name}” deactivated.")
    expect(page.locator(f'tr[data-topic="{name}"]')).to_contain_text("inactive")

    page.locator(f'tr[data-topic="{name}"]').get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name=f"Delete the topic “{name}”?")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    expect(page.locator(f'tr[data-topic="{name}"]')).to_have_count(1)

    page.locator(f'tr[data-topic="{name}"]').get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Yes, delete").click()
    expect_flash(page, "Topic deleted.")
    expect(page.locator(f'tr[data-topic="{name}"]')).to_have_count(0)


def test_promotion_shows_the_support_queue_after_reload(
    new_page: Callable[..., Page], account: Account
) -> None:
    admin, user = account(Role.admin), account(Role.user)
    user_page, admin_page = new_page(), new_page()
    log_in(user_page, user.username)
    assert "Support queue" not in nav_links(user_page)

    log_in(admin_page, admin.username)
    admin_page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    admin_page.get_by_role("searchbox", name="Find").fill(user.username)
    admin_page.get_by_role("button", name="Search").click()
    admin_page.get_by_role("link", name=user.username, exact=True).click()
    admin_page.get_by_label("Role").select_option("moderator")
    admin_page.get_by_role("button", name="Save role").click()
    expect_flash(admin_page, f"{user.username} is now moderator.")

    user_page.reload()

    assert nav_links(user_page) == ["Home", "Support queue", "Features", "Profile"]
    user_page.get_by_role("link", name="Support queue", exact=True).click()
    expect(user_page.get_by_role("heading", name="Support queue")).to_be_visible()


def test_a_form_without_its_csrf_token_is_refused(page: Page, account: Account) -> None:
    user = account(Role.user)
    log_in(page, user.username)
    page.goto("/profile")
    form = page.locator('form[action="/profile"]')
    form.locator('input[name="csrf_token"]').evaluate("input => input.remove()")
    form.get_by_label("Display name").fill("Forged")
    form.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", name="You may not see this page")).to_be_visible()
    expect(page.get_by_test_id("error-detail")).to_contain_text("did not come from chatforge")
    page.goto("/profile")
    expect(page.get_by_label("Display name")).to_have_value(user.display_name)


def test_unknown_url_shows_the_custom_404_page(page: Page) -> None:
    response = page.goto("/no/such/page")

    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    page.get_by_role("link", name="Back to the start page").click()
    expect(page).to_have_url(re.compile(r"/$"))


def test_pages_fit_a_phone_screen(new_page: Callable[..., Page], account: Account) -> None:
    page = new_page(width=360, height=740)
    page.goto("/")
    # The stylesheet is in force (the policy lets it load), so the layout below is the real one.
    assert page.evaluate("getComputedStyle(document.body).display") == "flex"
    for path in ("/", "/login", "/register", "/features"):
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, path

    admin = account(Role.admin)
    log_in(page, admin.username)
    for path in ("/", "/profile", "/features", "/admin/topics", "/admin/users", "/moderate"):
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, path
    page.goto(f"/admin/users/{admin.id}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


def test_login_works_with_the_keyboard_alone(page: Page, account: Account) -> None:
    user = account(Role.user)
    page.goto("/login")

    # The username field has focus on arrival; Tab moves on to the password, Enter submits.
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(user.username)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name=f"Hello, {user.display_name}")).to_be_visible()


def test_the_skip_link_is_the_first_stop_for_keyboard_users(page: Page) -> None:
    page.goto("/features")

    page.keyboard.press("Tab")

    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
