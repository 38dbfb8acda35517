"""Security headers on every response, and pages that work under the strict policy."""

from __future__ import annotations

import re

import httpx
import pytest

from chatforge.store.models import Role
from tests.conftest import Api
from tests.factories import make_topic


def policy(header: str) -> dict[str, str]:
    directives = (part.strip().split(" ", 1) for part in header.split(";") if part.strip())
    return {name: (rest[0] if rest else "") for name, *rest in directives}


def assert_secure_headers(response: httpx.Response) -> None:
    headers = response.headers
    csp = policy(headers["content-security-policy"])
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'"
    assert csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert csp["object-src"] == "'none'"
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert "unsafe-eval" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize(
    "path", ["/", "/login", "/register", "/features", "/no/such/page", "/static/chatforge.css"]
)
def test_pages_carry_a_strict_content_security_policy(api: Api, path: str) -> None:
    response = api.client.get(path)

    assert response.status_code in {200, 404}
    assert_secure_headers(response)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/me"), ("GET", "/api/features"), ("GET", "/healthz"), ("POST", "/api/topics")],
)
def test_api_responses_carry_the_headers_too(api: Api, method: str, path: str) -> None:
    assert_secure_headers(api.client.request(method, path))


def test_only_the_api_docs_relax_the_policy(api: Api) -> None:
    docs = api.client.get("/docs")

    assert docs.status_code == 200
    assert "'unsafe-inline'" in docs.headers["content-security-policy"]
    assert policy(docs.headers["content-security-policy"])["frame-ancestors"] == "'none'"


INLINE_CODE = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=|javascript:", re.I)


def test_no_page_relies_on_inline_code_the_policy_would_block(api: Api) -> None:
    admin = api.user(Role.admin)
    target = api.user()
    topic = api.call(make_topic, api.ctx, admin, None, "")
    api.browse_as(admin)
    paths = [
        "/",
        "/register",
        "/profile",
        "/features",
        "/moderate",
        "/annotate",
        "/admin/topics",
        f"/admin/topics/{topic.id}/edit",
        f"/admin/topics/{topic.id}/delete",
        "/admin/users",
        f"/admin/users/{target.id}",
        "/admin/features",
        "/no/such/page",
    ]

    for path in paths:
        page = api.client.get(path)
        assert page.headers["content-type"].startswith("text/html"), path
        assert INLINE_CODE.search(page.text) is None, (path, INLINE_CODE.search(page.text))
        assert '<script src="/static/chatforge.js" defer></script>' in page.text

    api.browse_as(None)
    login = api.client.get("/login")
    assert INLINE_CODE.search(login.text) is None


def test_static_files_are_served_with_their_types(api: Api) -> None:
    css = api.client.get("/static/chatforge.css")
    js = api.client.get("/static/chatforge.js")

    assert css.headers["content-type"].startswith("text/css")
    assert "javascript" in js.headers["content-type"]
    assert api.client.get("/static/../settings.py").status_code == 404
