"""Hostile input through a correctly signed WhatsApp webhook: markup comes back escaped in
TwiML, broken bytes and control characters get a precise 4xx, and a refusal stores nothing."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import func, select

from chatforge.store.bot_models import BotInteraction
from chatforge.store.models import User
from tests.channels.test_twilio_whatsapp import PATH, URL, count, post
from tests.conftest import Api
from tests.platforms import TWILIO_TOKEN, twilio_signature, whatsapp_form

MARKUP = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    '"><svg onload=alert(1)>',
    "]]><!ENTITY x SYSTEM 'file:///etc/passwd'>",
]


@pytest.mark.parametrize("text", MARKUP)
def test_markup_is_answered_in_well_formed_escaped_twiml(api: Api, text: str) -> None:
    response = post(api, whatsapp_form(text, ProfileName=text))
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.text)  # well formed: nothing the sender wrote became markup
    assert root.tag == "Response"
    assert {node.tag for node in root.iter()} <= {"Response", "Message"}
    assert count(api, BotInteraction) == 1

    async def names() -> list[str]:
        async with api.ctx.db.read() as session:
            return list(await session.scalars(select(User.display_name)))

    assert text[:64] in api.call(names)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        # A platform cannot show a refusal to its user: NUL characters are dropped instead.
        ({"Body": "a\x00b"}, 200),
        ({"Body": "x" * 1_000_000}, 413),
        ({"From": "whatsapp:+2782123<script>"}, 422),
        ({"From": "whatsapp:-1"}, 422),
        ({"From": "whatsapp:+" + "9" * 400}, 422),
        ({"NumMedia": "-5"}, 200),
    ],
)
def test_hostile_fields_get_a_precise_answer(api: Api, change: dict[str, str], status: int) -> None:
    form = whatsapp_form("python easy")
    form.update(change)
    response = post(api, form)
    assert response.status_code == status, response.text[:300]
    if status >= 400:
        assert response.json()["code"]
        assert count(api, BotInteraction) == 0


def test_invalid_utf8_signed_bytes_are_refused(api: Api) -> None:
    form = whatsapp_form("python easy")
    raw = "&".join(f"{k}={v}" for k, v in form.items()).encode() + b"&Extra=%ff%fe\xff"
    response = api.client.post(
        PATH,
        content=raw,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, URL, form),
        },
    )
    assert response.status_code in (403, 422), response.text
    assert response.json()["code"]

    async def users() -> int:
        async with api.ctx.db.read() as session:
            return int(await session.scalar(select(func.count()).select_from(User)) or 0)

    assert api.call(users) == 0
    assert count(api, BotInteraction) == 0
