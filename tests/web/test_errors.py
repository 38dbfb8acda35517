"""Error responses: custom pages for people, ``{"detail", "code"}`` JSON for programs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chatforge.app import create_app
from chatforge.settings import Settings
from chatforge.store.models import Role
from tests.conftest import Api


def is_page(response: httpx.Response) -> bool:
    return response.headers["content-type"].startswith("text/html")


def test_unknown_page_is_the_custom_404_page(api: Api) -> None:
    page = api.client.get("/no/such/page")

    assert page.status_code == 404
    assert is_page(page)
    assert "<h1>Page not found</h1>" in page.text
    assert 'href="/">Back to the start page' in page.text
    assert '<nav aria-label="Main"' in page.text


def test_the_404_page_keeps_the_logged_in_users_navigation(api: Api) -> None:
    user = api.user(Role.moderator)
    api.browse_as(user)

    page = api.client.get("/no/such/page")

    assert page.status_code == 404
    assert 'href="/moderate">Support queue</a>' in page.text
    assert 'data-testid="who"' in page.text
    assert 'href="/login">Log in</a>' not in page.text


def test_unknown_api_path_is_json(api: Api) -> None:
    response = api.client.get("/api/no-such-endpoint")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found", "code": "not_found"}


def test_a_program_asking_for_json_gets_json_errors_for_pages_too(api: Api) -> None:
    response = api.client.get("/no/such/page", headers={"Accept": "application/json"})

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_wrong_method_on_a_page_is_the_custom_405_page(api: Api) -> None:
    page = api.client.delete("/profile")

    assert page.status_code == 405
    assert is_page(page)
    assert "<h1>Not allowed here</h1>" in page.text
    assert "GET" in page.headers["allow"]


def test_wrong_method_on_the_api_is_json(api: Api) -> None:
    response = api.client.put("/api/me", json={})

    assert response.status_code == 405
    assert response.json() == {"detail": "Method Not Allowed", "code": "method_not_allowed"}
    assert "GET" in response.headers["allow"]


def test_forbidden_page_is_the_custom_403_page(api: Api) -> None:
    api.browse_as(api.user())

    page = api.client.get("/admin/topics")

    assert page.status_code == 403
    assert is_page(page)
    assert "<h1>You may not see this page</h1>" in page.text
    assert "Your role does not allow this." in page.text


def test_forbidden_api_call_is_json(api: Api) -> None:
    response = api.client.get("/api/users", headers=api.auth(api.user()))

    assert response.status_code == 403
    assert response.json() == {"detail": "Your role does not allow this.", "code": "forbidden"}


def test_anonymous_page_visit_is_sent_to_login(api: Api) -> None:
    response = api.client.get("/admin/topics", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/admin/topics"


def test_malformed_json_is_a_readable_422(api: Api) -> None:
    response = api.client.post(
        "/api/auth/token", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid"
    assert "JSON" in body["detail"]


# -- 500 ----------------------------------------------------------------------------------


@pytest.fixture
def failing_client(settings: Settings) -> Iterator[TestClient]:
    app: FastAPI = create_app(settings)

    async def explode() -> None:
        raise RuntimeError("secret internals: db password is hunter2")

    app.add_api_route("/explode", explode)
    app.add_api_route("/api/explode", explode)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_server_error_on_a_page_is_the_custom_500_page(failing_client: TestClient) -> None:
    page = failing_client.get("/explode")

    assert page.status_code == 500
    assert is_page(page)
    assert "<h1>Something went wrong</h1>" in page.text
    assert "hunter2" not in page.text
    assert "Traceback" not in page.text
    # Even this response, sent by the outermost error handler, carries the security headers.
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"


def test_server_errors_are_counted_in_the_metrics(failing_client: TestClient) -> None:
    def errors() -> float:
        prefix = 'chatforge_http_responses_total{method="GET",status="500"} '
        lines = [
            line
            for line in failing_client.get("/metrics").text.splitlines()
            if line.startswith(prefix)
        ]
        return float(lines[0].removeprefix(prefix)) if lines else 0.0

    before = errors()
    failing_client.get("/explode")
    failing_client.get("/api/explode")

    assert errors() == before + 2


def test_server_error_on_the_api_is_json(failing_client: TestClient) -> None:
    response = failing_client.get("/api/explode")

    assert response.status_code == 500
    assert response.json() == {
        "detail": "Something went wrong on our side.",
        "code": "internal_error",
    }
