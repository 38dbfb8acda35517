"""The FastAPI application factory.

Run with ``chatforge serve``, or ``uvicorn --factory chatforge.app:create_app``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from chatforge import __version__
from chatforge.api import (
    annotation,
    auth,
    bots,
    channels,
    conversations,
    datasets,
    features,
    ops,
    topics,
    users,
)
from chatforge.api import sessions as session_api
from chatforge.api.errors import install_error_handlers
from chatforge.api.openapi import build_openapi
from chatforge.context import AppContext, build_context
from chatforge.realtime.endpoint import websocket_endpoint
from chatforge.settings import Settings, load_settings
from chatforge.web.headers import SecurityHeaders
from chatforge.web.limits import BodyLimit
from chatforge.web.log_redaction import redact_tokens_in_server_logs
from chatforge.web.pages import account, admin, chat, sessions, support
from chatforge.web.pages import annotation as annotation_pages
from chatforge.web.pages import bots as bot_pages
from chatforge.web.render import build_environment

STATIC = Path(__file__).parent / "web" / "static"
log = logging.getLogger(__name__)


async def every(
    ctx: AppContext, seconds: float, lease: str, job: Callable[[], Awaitable[object]]
) -> None:
    """Run ``job`` every ``seconds`` until cancelled; with several processes, in the one that
    holds ``lease`` for that round."""
    while True:
        await asyncio.sleep(seconds)
        try:
            if await ctx.leases.acquire(lease, seconds * 0.9):
                await job()
        except Exception:
            log.exception("%s failed; retrying", lease)


async def catch_up_periodically(ctx: AppContext) -> None:
    """With several processes, look for events that were committed but never published."""
    while True:
        await asyncio.sleep(ctx.settings.catch_up_seconds)
        try:
            await ctx.hub.catch_up()
        except Exception:
            log.exception("catch-up failed; retrying")


class ChatforgeAPI(FastAPI):
    """FastAPI with the security headers (and response counter) and the body size cap around
    the whole stack, ``/ws`` in front of it, and the WhatsApp webhook's shortcut in front of
    everything.

    ``add_middleware`` would place them inside Starlette's outermost error handler, so the 500
    page it sends would go out without them and uncounted.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.front = channels.WhatsAppShortcut(super().__call__, self.state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.front(scope, receive, send)

    def build_middleware_stack(self) -> ASGIApp:
        return SocketShortcut(SecurityHeaders(BodyLimit(super().build_middleware_stack())))


class SocketShortcut:
    """``/ws`` handshakes go straight to the endpoint, past the HTTP middleware and router.

    None of those layers does anything for a WebSocket, but each keeps a coroutine frame (and
    FastAPI an exit stack) alive for the life of every socket: several KiB per idle connection,
    which is what decides how many sockets fit in a process's memory.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            await websocket_endpoint(WebSocket(scope, receive, send))
            return
        await self.app(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; resources (database, broker) are created when it starts, not here."""
    config = settings or load_settings()
    config.check()
    # Before the server logs its first handshake: tokens in WebSocket URLs stay out of the logs.
    redact_tokens_in_server_logs()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx: AppContext = build_context(config)
        app.state.ctx = ctx
        await ctx.start()
        # Everything built so far (modules, the ORM's mappers, compiled routes) lives as long as
        # the app: out of the collector's sight, a full collection no longer walks it and stops
        # taking tens of milliseconds, which was most of the webhooks' p99 under load. (Thawed
        # at shutdown, for processes that start several apps, like the tests.)
        gc.freeze()
        sweep = config.bot_timeout_sweep_seconds
        tasks = [
            # S6: claimed but unanswered support conversations go back to the queue.
            asyncio.create_task(
                every(
                    ctx,
                    min(10.0, config.claim_timeout_seconds / 2),
                    "claim-sweep",
                    ctx.support.release_unanswered,
                )
            ),
            # Quiet bot chats end, so they reach the annotators. Looking for them reads every
            # open bot chat, so not more often than a minute (or a tenth of the idle limit).
            asyncio.create_task(
                every(
                    ctx,
                    min(60.0, config.bot_chat_idle_minutes * 6),
                    "bot-chat-ends",
                    ctx.bot_chats.end_idle,
                )
            ),
            # Idle timeouts (B7) are stored deadlines; this sweep fires the due ones.
            asyncio.create_task(
                ctx.bot_runtime.run_timeouts(
                    sweep, lambda: ctx.leases.acquire("bot-timeouts", sweep * 0.9)
                )
            ),
        ]
        if config.redis_url:
            tasks.append(asyncio.create_task(catch_up_periodically(ctx)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await ctx.close()
            gc.unfreeze()

    app = ChatforgeAPI(
        title="chatforge",
        version=__version__,
        description="Support chat, live sessions, bots and annotation, over one REST and "
        "WebSocket API.",
        lifespan=lifespan,
    )
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    app.state.templates = build_environment()
    install_error_handlers(app)
    for router in (
        auth.router,
        users.router,
        topics.router,
        features.router,
        ops.router,
        conversations.router,
        session_api.router,
        account.router,
        admin.router,
        annotation.router,
        datasets.router,
        annotation_pages.router,
        annotation_pages.labels_router,
        support.router,
        sessions.router,
        bots.router,
        channels.router,
        bot_pages.router,
        chat.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
