"""WhatsApp through Twilio (B2).

Inbound: Twilio POSTs the message form-encoded to ``/channels/twilio/whatsapp`` and signs it:
``X-Twilio-Signature`` is the base64 HMAC-SHA1, keyed with the account's auth token, of the
public URL followed by every parameter name and value in name order. We check it with the
official ``RequestValidator`` against ``CHATFORGE_PUBLIC_URL`` + path, because behind a proxy
the URL we are called on is not the one Twilio signed. The answer is TwiML.

Outbound (messages no webhook answer carries): Twilio's Messages REST API.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import httpx
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.twiml.messaging_response import MessagingResponse

from chatforge.channels.base import Channel, ChannelError, InboundMessage
from chatforge.errors import Invalid
from chatforge.settings import Settings

PATH = "/channels/twilio/whatsapp"
MAX_BODY_CHARS = 4096
SID_RE = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")


class FormParams(dict[str, list[str]]):
    """Form fields with every value, in the shape Twilio's validator reads (``getall``)."""

    def getall(self, name: str) -> list[str]:
        return self[name]

    def one(self, name: str) -> str | None:
        values = self.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise Invalid(f"{name}: given more than once.", code="invalid_payload")
        return values[0]


class TwilioWhatsApp(Channel):
    name = "whatsapp"
    # Twilio refuses WhatsApp message bodies over 1600 characters.
    max_text = 1600

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.url = settings.public_url + PATH
        self.account_sid = settings.twilio_account_sid
        self.auth_token = settings.twilio_auth_token
        self.sender = settings.twilio_from
        self.api_url = settings.twilio_api_url.rstrip("/")
        self.http = http
        self._validator = RequestValidator(self.auth_token) if self.auth_token else None

    def verify(
        self, params: FormParams, signature: str | None, settings_header: str | None = None
    ) -> bool:
        """True when ``signature`` is Twilio's for our public URL and these parameters."""
        if self._validator is None or not signature:
            return False
        algorithm = get_signature_algorithm(settings_header)
        return bool(self._validator.validate(self.url, params, signature, algorithm))

    def parse(self, params: FormParams) -> InboundMessage:
        """The inbound message in Twilio's fields; raises ``Invalid`` naming the bad field."""
        sid = params.one("MessageSid") or params.one("SmsMessageSid")
        if not sid or not SID_RE.fullmatch(sid):
            raise Invalid(
                "MessageSid: missing or not a Twilio message SID.", code="invalid_payload"
            )
        if self.account_sid and params.one("AccountSid") not in (None, self.account_sid):
            raise Invalid("AccountSid: not this account.", code="invalid_payload")
        sender = params.one("From")
        if not sender:
            raise Invalid("From: missing.", code="invalid_payload")
        if not sender.lower().startswith("whatsapp:"):
            raise Invalid("From: not a WhatsApp sender.", code="invalid_payload")
        body = params.one("Body") or ""
        if len(body) > MAX_BODY_CHARS:
            raise Invalid(f"Body: longer than {MAX_BODY_CHARS} characters.", code="too_long")
        profile = params.one("ProfileName")
        return InboundMessage(
            channel=self.name,
            message_id=sid,
            sender=sender,
            text=body,
            profile_name=profile[:64] if profile else None,
        )

    @staticmethod
    def twiml(replies: Iterable[str]) -> str:
        """The webhook's answer: one ``<Message>`` per reply."""
        response = MessagingResponse()
        for text in replies:
            response.message(text)
        return str(response)

    async def send(self, external_id: str, text: str) -> None:
        if not (self.account_sid and self.auth_token and self.sender):
            raise ChannelError("Twilio is not configured (account SID, auth token, from number)")
        sender = self.sender if self.sender.startswith("whatsapp:") else f"whatsapp:{self.sender}"
        try:
            response = await self.http.post(
                f"{self.api_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json",
                data={"To": f"whatsapp:{external_id}", "From": sender, "Body": text},
                auth=(self.account_sid, self.auth_token),
            )
        except httpx.HTTPError as exc:
            raise ChannelError(f"Twilio unreachable: {exc}") from exc
        if response.status_code >= 300:
            raise ChannelError(f"Twilio refused the message: {response.status_code}")


def form_params(pairs: Iterable[tuple[str, str]]) -> FormParams:
    params = FormParams()
    for key, value in pairs:
        params.setdefault(key, []).append(value)
    return params
