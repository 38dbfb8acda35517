"""Facebook Messenger (B2).

``GET`` is the subscription handshake: Facebook sends ``hub.mode=subscribe``, our verify token
and a challenge, which we echo. ``POST`` carries events, signed in ``X-Hub-Signature-256`` as
``sha256=`` + hex HMAC-SHA256 of the raw body keyed with the app secret. Facebook expects a fast
200; answers go out separately through the Graph Send API.
"""

from __future__ import annotations

import hashlib
import hmac

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chatforge.channels.base import Channel, ChannelError, InboundMessage
from chatforge.errors import Forbidden, Invalid
from chatforge.settings import Settings

PATH = "/channels/facebook/messenger"
MAX_TEXT = 4096


class _Model(BaseModel):
    # Facebook adds fields over time; unknown ones are ignored, the ones we use are checked.
    model_config = ConfigDict(extra="ignore")


class _Party(_Model):
    id: str = Field(min_length=1, max_length=64)


class _Message(_Model):
    mid: str = Field(min_length=1, max_length=256)
    text: str | None = Field(default=None, max_length=MAX_TEXT)
    is_echo: bool = False


class _Messaging(_Model):
    sender: _Party
    recipient: _Party
    timestamp: int | None = None
    message: _Message | None = None


class _Entry(_Model):
    id: str
    time: int | None = None
    messaging: list[_Messaging] = Field(default_factory=list, max_length=100)


class MessengerWebhook(_Model):
    object: str
    entry: list[_Entry] = Field(max_length=100)


class FacebookMessenger(Channel):
    name = "messenger"
    # The Send API takes at most 2000 characters of text per message.
    max_text = 2000

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.verify_token = settings.facebook_verify_token
        self.app_secret = settings.facebook_app_secret.encode()
        self.page_token = settings.facebook_page_token
        self.api_url = settings.graph_api_url.rstrip("/")
        self.http = http

    def handshake(self, mode: str | None, token: str | None, challenge: str | None) -> str:
        """The challenge to echo when Facebook subscribes us; raises ``Forbidden`` otherwise."""
        if not self.verify_token or mode != "subscribe" or token is None:
            raise Forbidden("Verification refused.", code="bad_verify_token")
        if not hmac.compare_digest(token.encode(), self.verify_token.encode()):
            raise Forbidden("Verification refused.", code="bad_verify_token")
        if not challenge or len(challenge) > 256:
            raise Invalid("hub.challenge: missing or too long.", code="invalid_payload")
        return challenge

    def verify(self, body: bytes, header: str | None) -> bool:
        """True when ``header`` is ``sha256=<hex HMAC of body with the app secret>``."""
        if not self.app_secret or not header or not header.startswith("sha256="):
            return False
        expected = hmac.new(self.app_secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), header[len("sha256=") :].strip().encode())

    def parse(self, body: bytes) -> list[InboundMessage]:
        """The user messages in a webhook body (echoes, deliveries and reads are skipped)."""
        try:
            payload = MessengerWebhook.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise Invalid(f"{where}: {first.get('msg')}", code="invalid_payload") from exc
        if payload.object != "page":
            raise Invalid("object: not a page subscription.", code="invalid_payload")
        return [
            InboundMessage(
                channel=self.name,
                message_id=event.message.mid,
                sender=event.sender.id,
                text=event.message.text or "",
            )
            for entry in payload.entry
            for event in entry.messaging
            if event.message is not None and not event.message.is_echo
        ]

    async def send(self, external_id: str, text: str) -> None:
        if not self.page_token:
            raise ChannelError("Messenger is not configured (CHATFORGE_FACEBOOK_PAGE_TOKEN)")
        try:
            response = await self.http.post(
                f"{self.api_url}/me/messages",
                params={"access_token": self.page_token},
                json={
                    "recipient": {"id": external_id},
                    "messaging_type": "RESPONSE",
                    "message": {"text": text},
                },
            )
        except httpx.HTTPError as exc:
            raise ChannelError(f"Graph API unreachable: {exc}") from exc
        if response.status_code >= 300:
            raise ChannelError(f"Graph API refused the message: {response.status_code}")
