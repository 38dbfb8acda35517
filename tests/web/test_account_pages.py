"""Pages for everyone: login, registration, logout, profile and the features page."""

from __future__ import annotations

import re
from html import unescape

import httpx
import pytest

from chatforge.api.deps import SESSION_COOKIE
from chatforge.store.models import Role, User
from chatforge.web.render import CSRF_COOKIE
from tests.conftest import Api
from tests.factories import PASSWORD

NEW_PASSWORD = "a brand new password"


def login_form(api: Api, username: str, password: str = PASSWORD, **extra: str) -> httpx.Response:
    return api.form("/login", {"username": username, "password": password, **extra})


def flashes(page: httpx.Response) -> list[str]:
    return [
        unescape(text) for text in re.findall(r'<p class="flash flash-\w+">(.*?)</p>', page.text)
    ]


def nav_labels(page: httpx.Response) -> list[str]:
    nav = page.text.split('<nav aria-label="Main"', 1)[1].split("</nav>", 1)[0]
    return re.findall(r">([^<>]+)</a>", nav)


def set_cookie_headers(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


# -- logging in ---------------------------------------------------------------------------


def test_login_page_has_a_form_with_a_csrf_token(api: Api) -> None:
    page = api.client.get("/login")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'name="csrf_token"' in page.text
    assert 'autocomplete="current-password"' in page.text
    csrf_cookie = next(c for c in set_cookie_headers(page) if c.startswith(f"{CSRF_COOKIE}="))
    assert "HttpOnly" in csrf_cookie
    assert "samesite=lax" in csrf_cookie.lower()


def test_login_sets_an_http_only_session_cookie_and_goes_home(api: Api) -> None:
    user = api.user()

    response = login_form(api, user.username.upper())

    assert response.status_code == 303
    assert response.headers["location"] == "/"
    session = next(c for c in set_cookie_headers(response) if c.startswith(f"{SESSION_COOKIE}="))
    assert "HttpOnly" in session
    assert "samesite=lax" in session.lower()
    assert "Path=/" in session
    home = api.client.get("/")
    assert f"Hello, {user.display_name}" in home.text
    assert nav_labels(home) == ["Home", "Features", "Profile"]


def test_wrong_password_shows_an_error_on_the_login_page(api: Api) -> None:
    user = api.user()

    page = login_form(api, user.username, "not the password at all")

    assert page.status_code == 401
    assert "Wrong username or password." in page.text
    assert 'role="alert"' in page.text
    assert f'value="{user.username}"' in page.text  # the username is kept
    assert "not the password at all" not in page.text
    assert SESSION_COOKIE not in "".join(set_cookie_headers(page))


def test_deactivated_account_cannot_log_in(api: Api) -> None:
    admin, user = api.user(Role.admin), api.user()
    api.client.patch(f"/api/users/{user.id}", json={"active": False}, headers=api.auth(admin))

    page = login_form(api, user.username)

    assert page.status_code == 401
    assert "This account is deactivated." in page.text


def test_login_form_is_rate_limited_per_username(api: Api) -> None:
    user = api.user()
    statuses = [login_form(api, user.username, "wrong password!").status_code for _ in range(10)]

    page = login_form(api, user.username)

    assert statuses == [401] * 10
    assert page.status_code == 429
    assert int(page.headers["retry-after"]) > 0
    assert "Too many failed logins" in page.text


def test_login_form_is_rate_limited_per_address(api: Api) -> None:
    statuses = [
        login_form(api, f"nobody{i}", "wrong password!").status_code
        for i in range(5)
        for _ in range(6)
    ]
    user = api.user()

    page = login_form(api, user.username)

    assert statuses == [401] * 30
    assert page.status_code == 429
    assert int(page.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "//evil.example/path",
        "/\\evil.example",
        "https://evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "",
    ],
)
def test_login_never_redirects_to_another_site(api: Api, target: str) -> None:
    user = api.user()
    page = api.client.get("/login", params={"next": target})
    assert 'name="next" value="/"' in page.text

    response = login_form(api, user.username, next=target)

    assert response.status_code == 303
    assert response.headers["location"] == "/"
    # Already logged in, the login page sends the browser on, and still only to this site.
    again = api.client.get("/login", params={"next": target}, follow_redirects=False)
    assert again.headers["location"] == "/"


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example"])
def test_login_redirect_survives_browsers_dropping_tabs_and_newlines(api: Api, target: str) -> None:
    # Browsers delete tabs and newlines from URLs: "/<TAB>/evil.example" would become
    # "//evil.example", another site, unless the redirect encodes them.
    user = api.user()

    location = login_form(api, user.username, next=target).headers["location"]

    as_browser_reads_it = re.sub(r"[\t\r\n]", "", location)
    assert as_browser_reads_it.startswith("/")
    assert not as_browser_reads_it.startswith(("//", "/\\"))


def test_login_returns_to_the_page_that_asked_for_it(api: Api) -> None:
    user = api.user()
    asked = api.client.get("/profile", follow_redirects=False)
    assert asked.status_code == 303
    assert asked.headers["location"] == "/login?next=/profile"
    page = api.client.get(asked.headers["location"])
    assert 'name="next" value="/profile"' in page.text

    response = login_form(api, user.username, next="/profile")

    assert response.headers["location"] == "/profile"
    assert "Your profile" in api.client.get("/profile").text


def test_the_query_of_the_page_that_asked_is_kept(api: Api) -> None:
    asked = api.client.get("/admin/users?q=bob&page=2", follow_redirects=False)

    assert asked.headers["location"] == "/login?next=/admin/users%3Fq%3Dbob%26page%3D2"
    page = api.client.get(asked.headers["location"])
    assert 'name="next" value="/admin/users?q=bob&amp;page=2"' in page.text


# -- CSRF ---------------------------------------------------------------------------------


def test_form_without_csrf_token_is_refused(api: Api) -> None:
    user = api.user()
    api.csrf()  # the cookie is there, the field is not

    page = api.client.post(
        "/login", data={"username": user.username, "password": PASSWORD}, follow_redirects=False
    )

    assert page.status_code == 403
    assert "did not come from chatforge" in page.text
    assert SESSION_COOKIE not in api.client.cookies


def test_form_with_a_token_but_no_csrf_cookie_is_refused(api: Api) -> None:
    user = api.user()
    token = api.csrf()
    api.client.cookies.delete(CSRF_COOKIE)

    page = api.client.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )

    assert page.status_code == 403


def test_form_with_a_token_for_another_cookie_is_refused(api: Api) -> None:
    user = api.user()
    token = api.csrf()
    api.client.cookies.set(CSRF_COOKIE, "another-random-value")

    page = api.client.post(
        "/login",
        data={"username": user.username, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )

    assert page.status_code == 403


@pytest.mark.parametrize(
    "headers", [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}]
)
def test_form_from_another_site_is_refused_even_with_a_token(
    api: Api, headers: dict[str, str]
) -> None:
    user = api.user()
    api.browse_as(user)
    token = api.csrf()

    page = api.client.post(
        "/profile",
        data={"display_name": "Pwned", "csrf_token": token},
        headers=headers,
        follow_redirects=False,
    )

    assert page.status_code == 403
    assert "Cross-site form submission refused." in page.text
    assert api.fresh(user).display_name == user.display_name


# -- registration and logout ------------------------------------------------------------


def test_register_page_creates_an_account_and_logs_in(api: Api, name: str) -> None:
    response = api.form(
        "/register", {"username": name, "password": PASSWORD, "display_name": "Ada"}
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/"
    home = api.client.get("/")
    assert "Hello, Ada" in home.text
    assert flashes(home) == ["Welcome, Ada!"]
    # The message is shown once.
    assert flashes(api.client.get("/")) == []


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"username": "ab", "password": PASSWORD}, 422, "Username must be 3-32 characters"),
        ({"username": "valid_name", "password": "short"}, 422, "Password must be 8-128"),
        (
            {"username": "valid_name", "password": PASSWORD, "display_name": "x" * 65},
            422,
            "Display",
        ),
    ],
)
def test_register_page_explains_bad_fields(
    api: Api, fields: dict[str, str], status: int, message: str
) -> None:
    page = api.form("/register", fields)

    assert page.status_code == status
    assert message in page.text
    assert SESSION_COOKIE not in api.client.cookies


def test_register_page_refuses_a_taken_username(api: Api) -> None:
    user = api.user()

    page = api.form("/register", {"username": user.username.upper(), "password": PASSWORD})

    assert page.status_code == 409
    assert "That username is taken." in page.text


def test_logout_ends_the_browser_session(api: Api) -> None:
    user = api.user()
    login_form(api, user.username)
    assert SESSION_COOKIE in api.client.cookies

    response = api.form("/logout")

    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert SESSION_COOKIE not in api.client.cookies
    login_page = api.client.get("/login")
    assert flashes(login_page) == ["You are logged out."]
    assert api.client.get("/profile", follow_redirects=False).status_code == 303


def test_a_stale_cookie_counts_as_logged_out(api: Api) -> None:
    user = api.user()
    api.browse_as(user)
    api.client.post(
        "/api/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=api.auth(user),
    )

    home = api.client.get("/")

    assert home.status_code == 200
    assert nav_labels(home) == ["Features"]
    assert 'href="/login">Log in</a>' in home.text
    assert "Hello" not in home.text


# -- profile ------------------------------------------------------------------------------


def logged_in(api: Api, role: Role = Role.user) -> User:
    user = api.user(role)
    api.browse_as(user)
    return user


def test_profile_shows_the_account(api: Api) -> None:
    user = logged_in(api, Role.moderator)

    page = api.client.get("/profile")

    assert page.status_code == 200
    assert (
        f"Username <strong>{user.username}</strong>, role <strong>moderator</strong>" in page.text
    )


def test_profile_changes_the_display_name(api: Api) -> None:
    user = logged_in(api)

    response = api.form("/profile", {"display_name": "  New   Name "})

    assert response.headers["location"] == "/profile"
    page = api.client.get("/profile")
    assert flashes(page) == ["Display name saved."]
    assert 'value="New Name"' in page.text
    assert api.fresh(user).display_name == "New Name"


def test_profile_explains_a_bad_display_name(api: Api) -> None:
    user = logged_in(api)

    api.form("/profile", {"display_name": "   "})

    assert flashes(api.client.get("/profile")) == [
        "Display name must be 1-64 printable characters."
    ]
    assert api.fresh(user).display_name == user.display_name


def test_profile_password_change_keeps_this_browser_and_ends_other_sessions(api: Api) -> None:
    user = logged_in(api)
    other_session = api.login(user.username)

    response = api.form(
        "/profile/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/profile"
    page = api.client.get("/profile", follow_redirects=False)
    assert page.status_code == 200
    assert flashes(page) == ["Password changed."]
    assert api.client.get("/api/me", headers=other_session).status_code == 401
    assert api.login(user.username, NEW_PASSWORD)


def test_profile_password_change_needs_the_current_password(api: Api) -> None:
    user = logged_in(api)

    api.form("/profile/password", {"current_password": "wrong one", "new_password": NEW_PASSWORD})

    assert flashes(api.client.get("/profile")) == ["The current password is wrong."]
    assert api.login(user.username, PASSWORD)


def test_profile_password_change_explains_a_short_password(api: Api) -> None:
    user = logged_in(api)

    api.form("/profile/password", {"current_password": PASSWORD, "new_password": "short"})

    assert flashes(api.client.get("/profile")) == ["Password must be 8-128 characters long."]
    assert api.login(user.username, PASSWORD)


# -- features page ------------------------------------------------------------------------


def test_features_page_is_public(api: Api) -> None:
    page = api.client.get("/features")

    assert page.status_code == 200
    for role in Role:
        assert f'data-testid="features-{role.value}"' in page.text
    assert "Edit this page" not in page.text


def test_features_edited_by_an_admin_show_to_everyone_escaped(api: Api) -> None:
    admin = logged_in(api, Role.admin)
    editor = api.client.get("/admin/features")
    assert editor.status_code == 200
    text = '<script>alert("x")</script> & <b>bold</b>'

    response = api.form("/admin/features", {"text_user": text, "text_admin": "Run everything."})

    assert response.headers["location"] == "/features"
    assert flashes(api.client.get("/features")) == ["Features page saved."]
    for viewer in (None, api.user(), admin):
        api.browse_as(viewer)
        page = api.client.get("/features")
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in (
            page.text
        )
        assert "<script>alert" not in page.text
        assert "Run everything." in page.text
    assert api.client.get("/api/features").json()["roles"]["user"] == text
