"""Channel webhooks: ``/channels/twilio/whatsapp`` and ``/channels/facebook/messenger`` (B2).

Thin adapters: read the raw body (bounded), check the platform's signature before anything
else, parse, hand the messages to the gateway, answer in the platform's format. A bad or missing
signature is a 403 and nothing is stored.
"""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from chatforge.api.deps import Context
from chatforge.api.schemas import ErrorOut
from chatforge.channels.base import Channel, ChannelError
from chatforge.channels.facebook_messenger import PATH as MESSENGER_PATH
from chatforge.channels.twilio_whatsapp import PATH as WHATSAPP_PATH
from chatforge.channels.twilio_whatsapp import form_params
from chatforge.errors import ChatforgeError, Forbidden, Invalid

log = logging.getLogger(__name__)
router = APIRouter(tags=["channels"])

MAX_TWILIO_BODY = 32 * 1024
MAX_MESSENGER_BODY = 256 * 1024
MAX_FORM_FIELDS = 64


class PayloadTooLarge(ChatforgeError):
    status = 413
    default_code = "too_large"


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise PayloadTooLarge(f"The body is over {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is over {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    WHATSAPP_PATH,
    response_class=Response,
    responses={
        200: {"content": {"application/xml": {}}, "description": "TwiML with the replies"},
        403: {"model": ErrorOut},
        413: {"model": ErrorOut},
        422: {"model": ErrorOut},
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
    signature: Annotated[str | None, Header(alias="X-Twilio-Signature")] = None,
    signature_settings: Annotated[
        str | None, Header(alias="X-Twilio-Webhooks-Signature-Settings")
    ] = None,
) -> Response:
    """A WhatsApp message from Twilio, signed with ``X-Twilio-Signature``; answered in TwiML."""
    raw = await read_body(request, MAX_TWILIO_BODY)
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise Invalid("The body is not a URL-encoded form.", code="invalid_payload") from exc
    params = form_params(pairs)
    if not ctx.whatsapp.verify(params, signature, signature_settings):
        raise Forbidden("The Twilio signature is missing or wrong.", code="bad_signature")
    message = ctx.whatsapp.parse(params)
    delivery = await ctx.channels.receive(message)
    return Response(ctx.whatsapp.twiml(delivery.replies), media_type="application/xml")


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
