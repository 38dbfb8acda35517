"""Property-based fuzzing of the REST API from its own OpenAPI document (schemathesis).

Every operation is called with generated valid and invalid input as an anonymous visitor, a
user and an admin; every schemathesis check runs on every response: no server error, status
codes, content types, headers and bodies as documented, authentication enforced as declared.
The app runs in-process (the ``client`` fixture), bounded to about 60 s in all.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
import requests
import requests.adapters
import requests.structures
import schemathesis
import urllib3
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.generation.case import Case
from schemathesis.transport.requests import REQUESTS_TRANSPORT, RequestsTransport

from chatforge.store.models import Role
from tests.conftest import Api

BUDGET_SECONDS = 45.0  # per caller, a safety valve: a run takes about 10 s per caller
EXAMPLES = 12
SKIPPED = {
    # Ends the caller's own sessions (token_version), so every later call would be a 401.
    ("POST", "/api/me/password"),
}


class InProcessAdapter(requests.adapters.BaseAdapter):
    """Lets schemathesis's own probes (the ``ignored_auth`` check resends a request without
    credentials) reach the in-process app through the test's client."""

    def __init__(self, client: TestClient) -> None:
        super().__init__()
        self.client = client

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:  # type: ignore[override]
        self.client.cookies.clear()
        answer = self.client.request(
            str(request.method),
            str(request.url),
            headers=dict(request.headers),
            content=request.body,
            follow_redirects=False,
        )
        response = requests.Response()
        response.raw = urllib3.HTTPResponse(
            body=io.BytesIO(answer.content),
            headers=urllib3.HTTPHeaderDict(answer.headers.multi_items()),
            status=answer.status_code,
            version=11,
            preload_content=False,
        )
        response.reason = answer.reason_phrase
        response.status_code = answer.status_code
        response.headers = requests.structures.CaseInsensitiveDict(answer.headers)
        response._content = answer.content
        response.url = str(request.url)
        response.request = request
        response.encoding = answer.encoding
        return response

    def close(self) -> None:
        pass


class InProcessTransport(RequestsTransport):
    """schemathesis's requests transport, with every request (its checks' probes too) going to
    the app in this process through the test's client."""

    def __init__(self, client: TestClient) -> None:
        super().__init__()
        self._copy_serializers_from(REQUESTS_TRANSPORT)
        self.session = requests.Session()
        self.session.mount("http://testserver", InProcessAdapter(client))

    def send(self, case: Case, *, session: requests.Session | None = None, **kwargs: Any) -> Any:
        kwargs["base_url"] = "http://testserver"
        return super().send(case, session=self.session, **kwargs)


@pytest.mark.parametrize("caller", ["anonymous", Role.user.value, Role.admin.value])
def test_the_api_keeps_its_openapi_promises(
    api: Api, caller: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = api.client
    document = client.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    headers: dict[str, str] = {}
    if caller != "anonymous":
        headers = api.auth(api.user(Role(caller)))
    api.ctx.accounts.throttle.per_username = 10**6  # failed logins must not lock the fuzzer out
    api.ctx.accounts.throttle.per_ip = 10**6

    transport = InProcessTransport(client)
    monkeypatch.setattr(type(schema), "transport", property(lambda _schema: transport))
    failures: list[str] = []
    calls = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        if time.monotonic() - started > BUDGET_SECONDS:
            failures.append(f"time budget spent before {operation.label}")
            break

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Case) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(headers=headers)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label}: {summary(exc)}")
    print(f"{caller}: {calls} calls in {time.monotonic() - started:.1f} s")
    assert not failures, "\n\n".join(failures)


def summary(exc: BaseException) -> str:
    """Each failure's kind, the response body and the request that showed it, on a few lines."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    kinds = [line[2:] for line in lines if line.startswith("- ")] or lines[:1]
    shown = [line for line in lines if line.startswith(("`", "curl", "Received", "Expected"))]
    return "; ".join(kinds) + " | " + " | ".join(shown)
