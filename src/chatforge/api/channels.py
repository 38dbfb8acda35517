"""Channel webhooks: ``/channels/twilio/whatsapp`` and ``/channels/facebook/messenger`` (B2).

Thin adapters: read the raw body (bounded), check the platform's signature before anything
else, parse, hand the messages to the gateway, answer in the platform's format. A bad or missing
signature is a 403 and nothing is stored. An answer is sent only once the message's handling has
committed; when it could not be (the database refused the batch), the answer is a 503, and the
platform's retry is handled afresh.

The WhatsApp webhook is the busy one (every message of every WhatsApp user), so
:class:`WhatsAppShortcut`, in front of the whole application, answers it with
:func:`whatsapp_twiml` on the raw ASGI messages: the layers in between (FastAPI's hooks, error
middleware, routing, dependency resolution, request and response objects) cost more than
everything else the request does. The route below stays, for the API description and for an
app built without the shortcut; both answer with the same function and the same error bodies.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request
from sqlalchemy.exc import DBAPIError
from starlette.datastructures import State
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from chatforge.api.deps import Context
from chatforge.api.errors import domain_error, unexpected_error
from chatforge.api.schemas import ErrorOut
from chatforge.channels.base import Channel, ChannelError
from chatforge.channels.facebook_messenger import PATH as MESSENGER_PATH
from chatforge.channels.twilio_whatsapp import PATH as WHATSAPP_PATH
from chatforge.channels.twilio_whatsapp import parse_form
from chatforge.context import AppContext
from chatforge.errors import ChatforgeError, Forbidden, TryAgain
from chatforge.web.headers import PAGE_HEADERS, count_response

log = logging.getLogger(__name__)
router = APIRouter(tags=["channels"])

MAX_TWILIO_BODY = 32 * 1024
MAX_MESSENGER_BODY = 256 * 1024
SIGNATURE = "X-Twilio-Signature"
SIGNATURE_SETTINGS = "X-Twilio-Webhooks-Signature-Settings"
TWIML_TYPE = "application/xml"
TWIML_HEADER = TWIML_TYPE.encode()


class PayloadTooLarge(ChatforgeError):
    status = 413
    default_code = "too_large"


async def receive_body(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes without reading them all."""
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise PayloadTooLarge(f"The body is over {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is over {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_body(request: Request, limit: int) -> bytes:
    return await receive_body(request.receive, request.headers.get("content-length"), limit)


async def whatsapp_twiml(
    ctx: AppContext, raw: bytes, signature: str | None, signature_settings: str | None
) -> str:
    """The TwiML answer to one signed WhatsApp webhook; raises ``ChatforgeError``s."""
    params = parse_form(raw)
    if not ctx.whatsapp.verify(params, signature, signature_settings):
        raise Forbidden("The Twilio signature is missing or wrong.", code="bad_signature")
    message = ctx.whatsapp.parse(params)
    try:
        delivery = await ctx.channels.receive(message)
    except DBAPIError as exc:
        # Its transaction did not commit: nothing is stored, and Twilio's retry of the same
        # MessageSid is handled as new. (A server that is stopping answers the same 503 through
        # ``GroupCommitClosed``, a ``TryAgain``.)
        log.warning("WhatsApp message %s not stored: %r", message.message_id, exc)
        raise TryAgain("The message could not be stored now; send it again.") from exc
    return ctx.whatsapp.twiml(delivery.replies)


@router.post(
    WHATSAPP_PATH,
    response_class=Response,
    responses={
        200: {"content": {"application/xml": {}}, "description": "TwiML with the replies"},
        403: {"model": ErrorOut},
        413: {"model": ErrorOut},
        422: {"model": ErrorOut},
        503: {"model": ErrorOut},
    },
    openapi_extra={
        "requestBody": {
            "content": {"application/x-www-form-urlencoded": {}},
            "description": "Twilio's incoming message fields (MessageSid, From, Body, ...)",
        }
    },
)
async def twilio_whatsapp(
    request: Request,
    ctx: Context,
    signature: Annotated[str | None, Header(alias=SIGNATURE)] = None,
    signature_settings: Annotated[str | None, Header(alias=SIGNATURE_SETTINGS)] = None,
) -> Response:
    """A WhatsApp message from Twilio, signed with ``X-Twilio-Signature``; answered in TwiML."""
    raw = await read_body(request, MAX_TWILIO_BODY)
    twiml = await whatsapp_twiml(ctx, raw, signature, signature_settings)
    return Response(twiml, media_type=TWIML_TYPE)


class WhatsAppShortcut:
    """ASGI middleware answering ``POST /channels/twilio/whatsapp`` itself, with the app's
    security headers, response count and error bodies; every other request goes on to ``app``.

    It sits in front of the whole application, so the webhook skips the layers that do nothing
    for it (telemetry hooks, error and exception middleware, routing, dependencies) and builds no
    request or response object unless it has an error to report.
    """

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        # The application's state, where the lifespan puts the context once it has started.
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != WHATSAPP_PATH
            or scope["method"] != "POST"
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        signature = settings = length = None
        for name, value in scope["headers"]:
            # The first of a repeated header counts, as with Starlette's ``Headers.get``.
            if name == b"x-twilio-signature" and signature is None:
                signature = value.decode("latin-1")
            elif name == b"x-twilio-webhooks-signature-settings" and settings is None:
                settings = value.decode("latin-1")
            elif name == b"content-length" and length is None:
                length = value.decode("latin-1")
        try:
            raw = await receive_body(receive, length, MAX_TWILIO_BODY)
            body = (await whatsapp_twiml(self.state.ctx, raw, signature, settings)).encode()
        except ClientDisconnect:
            return
        except Exception as exc:
            request = Request(scope, receive)
            if isinstance(exc, ChatforgeError):
                response = await domain_error(request, exc)
            else:
                response = await unexpected_error(request, exc)
            await self._send(send, response.status_code, response.raw_headers, response.body)
            return
        headers = [(b"content-type", TWIML_HEADER), (b"content-length", b"%d" % len(body))]
        await self._send(send, 200, headers, body)

    @staticmethod
    async def _send(
        send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes | memoryview
    ) -> None:
        count_response("POST", status)
        headers = [*headers, *PAGE_HEADERS]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@router.get(MESSENGER_PATH, response_class=PlainTextResponse, responses={403: {"model": ErrorOut}})
async def messenger_verify(
    ctx: Context,
    mode: Annotated[str | None, Query(alias="hub.mode", max_length=32)] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token", max_length=256)] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=256)] = None,
) -> PlainTextResponse:
    """Facebook's subscription handshake: echo ``hub.challenge`` if the verify token matches."""
    return PlainTextResponse(ctx.messenger.handshake(mode, token, challenge))


async def _send_replies(channel: Channel, external_id: str, replies: list[str]) -> None:
    try:
        await channel.send_all(external_id, replies)
    except ChannelError:
        log.exception("could not answer on %s", channel.name)


@router.post(
    MESSENGER_PATH,
    responses={403: {"model": ErrorOut}, 413: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {}},
            "description": "Messenger webhook events ({object: page, entry: [...]})",
        }
    },
)
async def messenger_events(
    request: Request,
    ctx: Context,
    background: BackgroundTasks,
    signature: Annotated[str | None, Header(alias="X-Hub-Signature-256")] = None,
) -> JSONResponse:
    """Messenger events, signed with ``X-Hub-Signature-256``; replies go out via the Send API."""
    raw = await read_body(request, MAX_MESSENGER_BODY)
    if not ctx.messenger.verify(raw, signature):
        raise Forbidden("The Messenger signature is missing or wrong.", code="bad_signature")
    handled = 0
    for message in ctx.messenger.parse(raw):
        delivery = await ctx.channels.receive(message)
        if delivery.duplicate:
            continue
        handled += 1
        if delivery.replies and delivery.external_id:
            # After the response: Facebook wants its 200 quickly and retries slow webhooks.
            background.add_task(
                _send_replies, ctx.messenger, delivery.external_id, delivery.replies
            )
    return JSONResponse({"status": "ok", "handled": handled})
