"""WhatsApp through Twilio, through the real webhook endpoint, signed as Twilio signs."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select
from starlette.datastructures import State

from chatforge.api.channels import WhatsAppShortcut
from chatforge.store.bot_models import BotInteraction, InboundMessage
from chatforge.store.models import ChannelIdentity, User
from tests.clock import ManualClock
from tests.conftest import Api
from tests.platforms import (
    TWILIO_FROM,
    TWILIO_SID,
    TWILIO_TOKEN,
    FakePlatform,
    message_sid,
    twilio_signature,
    whatsapp_form,
)

PATH = "/channels/twilio/whatsapp"
URL = "https://chat.example.org" + PATH


def post(
    api: Api, form: Mapping[str, str], *, signature: str | None = "sign", url: str = URL
) -> httpx.Response:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature == "sign":
        signature = twilio_signature(TWILIO_TOKEN, url, form)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return api.client.post(PATH, content=urlencode(form), headers=headers)


def messages(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return messages_of(response.text)


def messages_of(twiml: str) -> list[str]:
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    return [node.text or "" for node in root.findall("Message")]


def count(api: Api, model: type) -> int:
    async def run() -> int:
        async with api.ctx.db.read() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)

    return api.client.portal.call(run)  # type: ignore[union-attr]


def interactions(api: Api) -> list[BotInteraction]:
    async def run() -> list[BotInteraction]:
        async with api.ctx.db.read() as session:
            return list(await session.scalars(select(BotInteraction).order_by(BotInteraction.id)))

    return api.client.portal.call(run)  # type: ignore[union-attr]


def test_a_signed_message_is_answered_in_twiml_by_the_challenge_bot(api: Api) -> None:
    replies = messages(post(api, whatsapp_form("python easy")))
    assert replies[0].startswith("Hi!")
    assert replies[1].startswith("Python · easy")
    assert "4 challenges left" in replies[1]

    async def identity() -> tuple[ChannelIdentity, User]:
        async with api.ctx.db.read() as session:
            row = (await session.execute(select(ChannelIdentity, User).join(User))).one()
            return row[0], row[1]

    found, user = api.client.portal.call(identity)  # type: ignore[union-attr]
    assert (found.channel, found.external_id) == ("whatsapp", "+27821234567")
    assert user.password_hash is None
    assert user.display_name == "Thandi"
    [logged] = interactions(api)
    assert (logged.keyword, logged.counted, logged.channel) == ("python easy", True, "whatsapp")


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "not-base64-at-all",
        base64.b64encode(b"x" * 20).decode(),
    ],
)
def test_a_missing_or_wrong_signature_is_refused_and_nothing_is_stored(
    api: Api, signature: str | None
) -> None:
    response = post(api, whatsapp_form("python easy"), signature=signature)
    assert response.status_code == 403
    assert response.json()["code"] == "bad_signature"
    assert count(api, User) == 0
    assert count(api, InboundMessage) == 0
    assert count(api, BotInteraction) == 0


def test_a_signature_for_another_url_or_other_fields_is_refused(api: Api) -> None:
    form = whatsapp_form("python easy")
    # What a proxy's internal URL would give: not the public URL Twilio signed.
    assert post(api, form, url="http://testserver" + PATH).status_code == 403
    tampered = dict(form, Body="sql hard")
    signature = twilio_signature(TWILIO_TOKEN, URL, form)
    assert post(api, tampered, signature=signature).status_code == 403
    other_token = twilio_signature("someone-elses-token", URL, form)
    assert post(api, form, signature=other_token).status_code == 403
    assert count(api, BotInteraction) == 0


def test_a_retried_webhook_is_handled_once(api: Api) -> None:
    form = whatsapp_form("python easy")
    first = messages(post(api, form))
    again = messages(post(api, form))
    assert len(first) == 2
    assert again == []
    [logged] = interactions(api)
    assert logged.counted
    assert count(api, InboundMessage) == 1


def test_sender_ids_are_normalised_to_one_account(api: Api) -> None:
    post(api, whatsapp_form("help", sender="+27821234567"))
    spaced = whatsapp_form("help", **{"From": "whatsapp:+27 82 123 4567"})
    messages(post(api, spaced))
    assert count(api, ChannelIdentity) == 1
    assert len({i.user_id for i in interactions(api)}) == 1


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"MessageSid": "", "SmsMessageSid": ""}, 422, "MessageSid"),
        ({"MessageSid": "SM123", "SmsMessageSid": "SM123"}, 422, "MessageSid"),
        ({"From": "+27821234567"}, 422, "From"),
        ({"From": "whatsapp:not-a-number"}, 422, "sender"),
        ({"Body": "x" * 4097}, 422, "Body"),
        ({"AccountSid": "AC" + "9" * 32}, 422, "AccountSid"),
    ],
)
def test_malformed_but_signed_fields_get_a_precise_4xx(
    api: Api, change: dict[str, str], status: int, field: str
) -> None:
    form = whatsapp_form("python easy")
    form.update(change)
    response = post(api, form)
    assert response.status_code == status, response.text
    assert field in response.json()["detail"]
    assert count(api, BotInteraction) == 0


def test_an_oversized_body_is_413_before_anything_else(api: Api) -> None:
    form = whatsapp_form("y" * 40_000)
    response = post(api, form)
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


def test_the_quota_is_five_counted_requests_per_rolling_24_hours(api: Api) -> None:
    clock = ManualClock()
    api.ctx.bot_runtime.clock = clock
    start = clock.now
    for i in range(5):
        clock.advance(hours=1)
        replies = messages(post(api, whatsapp_form("sql medium")))
        assert replies[-1].startswith("Sql · medium"), (i, replies)
        # help never counts, in between counted requests
        assert "Send a category" in messages(post(api, whatsapp_form("help")))[0]
    clock.advance(hours=1)
    [refusal] = messages(post(api, whatsapp_form("stats easy")))
    # The first counted request was at start + 1 h: it leaves the window at start + 25 h.
    next_time = (start + timedelta(hours=25)).strftime("%H:%M")
    assert "You have had your 5 challenges" in refusal
    assert f"at {next_time} UTC" in refusal
    clock.now = start + timedelta(hours=25) - timedelta(seconds=1)
    assert "You have had your 5" in messages(post(api, whatsapp_form("stats easy")))[0]
    clock.now = start + timedelta(hours=25)
    assert messages(post(api, whatsapp_form("stats easy")))[0].startswith("Stats · easy")
    logged = interactions(api)
    assert sum(i.counted for i in logged) == 6
    assert [i.outcome for i in logged].count("refused") == 2
    assert [i.outcome for i in logged].count("help") == 5


def test_later_replies_go_out_through_twilios_messages_api(
    api: Api, platform: FakePlatform
) -> None:
    messages(post(api, whatsapp_form("hi", sender="+447700900123")))

    async def send() -> None:
        await api.ctx.channels.send(1, "whatsapp", "A mentor answers: try a dict.")

    api.client.portal.call(send)  # type: ignore[union-attr]
    [request] = platform.wait_for(1)
    assert request.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert request.form() == {
        "To": "whatsapp:+447700900123",
        "From": TWILIO_FROM,
        "Body": "A mentor answers: try a dict.",
    }
    expected = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"


def test_a_sid_is_what_twilio_sends() -> None:
    assert re.fullmatch(r"SM[0-9a-f]{32}", message_sid())


def test_the_route_answers_as_its_shortcut_does(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [
        whatsapp_form("python easy", sender="+447700900001"),
        dict(whatsapp_form("sql hard"), Body="tampered"),
        dict(whatsapp_form("sql hard"), From="whatsapp:nobody"),
    ]
    signatures = ["sign", twilio_signature(TWILIO_TOKEN, URL, cases[1] | {"Body": "x"}), "sign"]

    def answers() -> list[tuple[int, str, str]]:
        found = []
        for form, signature in zip(cases, signatures, strict=True):
            response = post(api, form, signature=signature)
            found.append((response.status_code, response.headers["content-type"], response.text))
        return found

    through_shortcut = answers()

    async def pass_through(self: WhatsAppShortcut, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    monkeypatch.setattr(WhatsAppShortcut, "__call__", pass_through)
    # The same webhooks again (a retry of the first: handled once, so its answer is empty).
    through_route = answers()
    assert [a[:2] for a in through_route] == [a[:2] for a in through_shortcut]
    assert through_route[1:] == through_shortcut[1:]
    assert messages_of(through_shortcut[0][2])[1].startswith("Python · easy")
    assert messages_of(through_route[0][2]) == []


def test_webhook_answers_carry_the_security_headers_and_are_counted(api: Api) -> None:
    def counted(status: int) -> float:
        prefix = f'chatforge_http_responses_total{{method="POST",status="{status}"}} '
        text = api.client.get("/metrics").text
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(lines[0].removeprefix(prefix)) if lines else 0.0

    before = {status: counted(status) for status in (200, 403, 413)}
    answers = [
        post(api, whatsapp_form("help")),
        post(api, whatsapp_form("help"), signature="wrong"),
        post(api, whatsapp_form("y" * 40_000)),
    ]

    assert [a.status_code for a in answers] == [200, 403, 413]
    for answer in answers:
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        assert int(answer.headers["content-length"]) == len(answer.content)
    assert answers[1].json()["code"] == "bad_signature"
    assert {status: counted(status) - before[status] for status in before} == {
        200: 1,
        403: 1,
        413: 1,
    }


def test_a_chunked_body_over_the_limit_is_413_and_nothing_is_stored(api: Api) -> None:
    form = whatsapp_form("z" * 40_000)
    body = urlencode(form).encode()

    def chunks() -> Any:
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, URL, form),
    }
    response = api.client.post(PATH, content=chunks(), headers=headers)

    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert count(api, InboundMessage) == 0


def test_the_first_of_repeated_signature_headers_counts(api: Api) -> None:
    form = whatsapp_form("help")
    good = twilio_signature(TWILIO_TOKEN, URL, form)
    content = urlencode(form)
    kind = ("Content-Type", "application/x-www-form-urlencoded")

    refused = api.client.post(
        PATH,
        content=content,
        headers=[kind, ("X-Twilio-Signature", "bad"), ("X-Twilio-Signature", good)],
    )
    accepted = api.client.post(
        PATH,
        content=content,
        headers=[kind, ("X-Twilio-Signature", good), ("X-Twilio-Signature", "bad")],
    )

    assert refused.status_code == 403
    assert accepted.status_code == 200
    assert count(api, InboundMessage) == 1


async def test_a_client_that_leaves_mid_body_is_not_answered() -> None:
    sent: list[Any] = []
    arriving = iter(
        [
            {"type": "http.request", "body": b"MessageSid=SM", "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> Any:
        return next(arriving)

    async def send(message: Any) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the webhook does not go on to the application")

    scope = {"type": "http", "path": PATH, "method": "POST", "headers": []}
    await WhatsAppShortcut(app, State())(scope, receive, send)

    assert sent == []
