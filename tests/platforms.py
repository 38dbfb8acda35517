"""Fakes of the third-party HTTP side (Twilio's REST API, Facebook's Graph API), and signing
inbound webhooks exactly as those services do.

The fake is a real HTTP server on 127.0.0.1 recording each request, so the code under test
goes through httpx and the network like it does in production.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TWILIO_SID = "AC" + "0" * 31 + "1"
TWILIO_TOKEN = "twilio-auth-token-for-tests"
TWILIO_FROM = "whatsapp:+14155238886"
FB_APP_SECRET = "facebook-app-secret-for-tests"
FB_VERIFY_TOKEN = "verify-me-please"
FB_PAGE_TOKEN = "page-token-for-tests"
FB_PAGE_ID = "1122334455"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    def json(self) -> Any:
        return json.loads(self.body)


class FakePlatform:
    """Answers every POST with ``status`` and records it."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.status = 201
        self._lock = threading.Lock()
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                parts = urlsplit(self.path)
                with platform._lock:
                    platform.requests.append(
                        Recorded(
                            "POST",
                            parts.path,
                            parse_qs(parts.query),
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                payload = b'{"sid": "SM' + b"f" * 32 + b'", "message_id": "m_1"}'
                self.send_response(platform.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} requests, got {len(self.requests)}")


@contextmanager
def fake_platform() -> Iterator[FakePlatform]:
    platform = FakePlatform()
    thread = threading.Thread(
        target=platform.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield platform
    finally:
        platform.server.shutdown()
        platform.server.server_close()
        thread.join(5)


# -- Twilio ---------------------------------------------------------------------------------


def twilio_signature(token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature as Twilio computes it: base64(HMAC-SHA1(token, url + k1v1k2v2...))."""
    data = url + "".join(key + params[key] for key in sorted(params))
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


_sids = iter(range(1, 10**9))


def message_sid() -> str:
    return f"SM{next(_sids):032x}"


def whatsapp_form(
    body: str, sender: str = "+27821234567", *, sid: str | None = None, **extra: str
) -> dict[str, str]:
    """The fields Twilio posts for an incoming WhatsApp text."""
    form = {
        "SmsMessageSid": sid or message_sid(),
        "NumMedia": "0",
        "ProfileName": "Thandi",
        "SmsSid": "",
        "WaId": sender.lstrip("+"),
        "SmsStatus": "received",
        "Body": body,
        "To": TWILIO_FROM,
        "NumSegments": "1",
        "MessageSid": "",
        "AccountSid": TWILIO_SID,
        "From": f"whatsapp:{sender}",
        "ApiVersion": "2010-04-01",
    }
    form["MessageSid"] = form["SmsSid"] = form["SmsMessageSid"]
    form.update(extra)
    return form


# -- Facebook -------------------------------------------------------------------------------


def meta_signature(secret: str, body: bytes) -> str:
    """X-Hub-Signature-256 as Facebook computes it over the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


_mids = iter(range(1, 10**9))


def messenger_event(text: str | None, sender: str = "6543210987654321", **message: Any) -> bytes:
    """A Messenger webhook body with one text message, as Facebook posts it."""
    now = int(time.time() * 1000)
    content: dict[str, Any] = {"mid": message.pop("mid", f"m_{next(_mids)}AbCdEf"), **message}
    if text is not None:
        content["text"] = text
    payload = {
        "object": "page",
        "entry": [
            {
                "id": FB_PAGE_ID,
                "time": now,
                "messaging": [
                    {
                        "sender": {"id": sender},
                        "recipient": {"id": FB_PAGE_ID},
                        "timestamp": now,
                        "message": content,
                    }
                ],
            }
        ],
    }
    return json.dumps(payload).encode()


def platform_env(platform_url: str) -> dict[str, str]:
    """Settings for a server whose Twilio and Graph APIs are the fake at ``platform_url``."""
    return {
        "twilio_account_sid": TWILIO_SID,
        "twilio_auth_token": TWILIO_TOKEN,
        "twilio_from": TWILIO_FROM,
        "twilio_api_url": platform_url,
        "facebook_verify_token": FB_VERIFY_TOKEN,
        "facebook_app_secret": FB_APP_SECRET,
        "facebook_page_token": FB_PAGE_TOKEN,
        "graph_api_url": platform_url + "/v19.0",
    }
