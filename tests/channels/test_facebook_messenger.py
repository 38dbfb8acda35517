"""Facebook Messenger through the real webhook endpoints, signed as Facebook signs."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import func, select

from chatforge.store.bot_models import BotInteraction, InboundMessage
from chatforge.store.models import ChannelIdentity
from tests.conftest import Api
from tests.platforms import (
    FB_APP_SECRET,
    FB_PAGE_TOKEN,
    FB_VERIFY_TOKEN,
    FakePlatform,
    messenger_event,
    meta_signature,
)

PATH = "/channels/facebook/messenger"


def post(api: Api, body: bytes, *, signature: str | None = "sign") -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature == "sign":
        signature = meta_signature(FB_APP_SECRET, body)
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return api.client.post(PATH, content=body, headers=headers)


def count(api: Api, model: type) -> int:
    async def run() -> int:
        async with api.ctx.db.read() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)

    return api.client.portal.call(run)  # type: ignore[union-attr]


def test_the_verify_handshake_echoes_the_challenge(api: Api) -> None:
    response = api.client.get(
        PATH,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": FB_VERIFY_TOKEN,
            "hub.challenge": "1158201444",
        },
    )
    assert response.status_code == 200
    assert response.text == "1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": FB_VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ],
)
def test_the_handshake_refuses_a_wrong_token_or_mode(api: Api, params: dict[str, str]) -> None:
    response = api.client.get(PATH, params=params)
    assert response.status_code == 403
    assert response.json()["code"] == "bad_verify_token"


def test_a_signed_message_is_answered_through_the_send_api(
    api: Api, platform: FakePlatform
) -> None:
    response = post(api, messenger_event("stats hard", sender="6543210987654321"))
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "handled": 1}
    welcome, challenge = platform.wait_for(2)
    for sent in (welcome, challenge):
        assert sent.path == "/v19.0/me/messages"
        assert sent.query == {"access_token": [FB_PAGE_TOKEN]}
        assert sent.headers["content-type"] == "application/json"
    assert welcome.json()["message"]["text"].startswith("Hi!")
    assert challenge.json() == {
        "recipient": {"id": "6543210987654321"},
        "messaging_type": "RESPONSE",
        "message": {"text": challenge.json()["message"]["text"]},
    }
    assert challenge.json()["message"]["text"].startswith("Stats · hard")

    async def identity() -> tuple[str, str]:
        async with api.ctx.db.read() as session:
            row = await session.scalar(select(ChannelIdentity))
            assert row is not None
            return row.channel, row.external_id

    assert api.client.portal.call(identity) == ("messenger", "6543210987654321")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        "sha1=" + "0" * 40,
        meta_signature("another-app-secret", messenger_event("python easy", mid="m_fixed")),
    ],
)
def test_a_missing_or_wrong_signature_is_refused_and_nothing_is_stored(
    api: Api, platform: FakePlatform, signature: str | None
) -> None:
    response = post(api, messenger_event("python easy", mid="m_fixed"), signature=signature)
    assert response.status_code == 403
    assert response.json()["code"] == "bad_signature"
    assert count(api, InboundMessage) == 0
    assert count(api, ChannelIdentity) == 0
    assert platform.requests == []


def test_the_signature_covers_the_raw_body(api: Api) -> None:
    body = messenger_event("python easy")
    signature = meta_signature(FB_APP_SECRET, body)
    # Same JSON, different bytes: Facebook signed the bytes, so this is not its request.
    reformatted = json.dumps(json.loads(body), indent=2).encode()
    assert post(api, reformatted, signature=signature).status_code == 403


def test_a_redelivered_mid_is_handled_once(api: Api, platform: FakePlatform) -> None:
    body = messenger_event("python hard", mid="m_redelivered")
    assert post(api, body).json()["handled"] == 1
    assert post(api, body).json()["handled"] == 0
    platform.wait_for(2)
    assert len(platform.requests) == 2
    assert count(api, BotInteraction) == 1


def test_echoes_of_the_pages_own_messages_are_ignored(api: Api, platform: FakePlatform) -> None:
    response = post(api, messenger_event("I am the page", is_echo=True))
    assert response.json()["handled"] == 0
    assert count(api, BotInteraction) == 0
    assert platform.requests == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "Invalid JSON"),
        (json.dumps({"object": "user", "entry": []}).encode(), "object"),
        (
            json.dumps({"object": "page", "entry": [{"id": "1", "messaging": [{}]}]}).encode(),
            "sender",
        ),
        (messenger_event("x" * 5000), "text"),
        (messenger_event("hi", sender="not-a-psid"), "Messenger id"),
    ],
)
def test_malformed_but_signed_payloads_get_a_422(api: Api, body: bytes, detail: str) -> None:
    response = post(api, body)
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]
    assert count(api, BotInteraction) == 0


def test_an_oversized_body_is_413(api: Api) -> None:
    response = post(api, b"{" + b" " * 300_000 + b"}")
    assert response.status_code == 413


def test_a_refusing_graph_api_does_not_fail_the_webhook(api: Api, platform: FakePlatform) -> None:
    platform.status = 500
    response = post(api, messenger_event("python easy"))
    assert response.status_code == 200
    assert count(api, BotInteraction) == 1
