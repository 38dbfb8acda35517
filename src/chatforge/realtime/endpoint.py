"""The ``/ws`` endpoint: authenticate, then turn client frames into service calls.

It holds no rule of its own: every frame calls the same services as the REST API, and domain
errors come back as ``error`` frames. Outgoing frames are written straight to the socket's
transport (``wire.py``), so a slow client never slows the fan-out to everyone else; a client too
slow to take what it is sent is disconnected and resumes from its last ``seq`` when it
reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from chatforge.api.deps import SESSION_COOKIE
from chatforge.context import AppContext
from chatforge.errors import ChatforgeError, Forbidden
from chatforge.realtime import protocol
from chatforge.realtime.envelope import (
    PRESENCE_TOPIC,
    QUEUE_TOPIC,
    SESSION_REVOKED_FRAME,
    Envelope,
    dumps,
    user_topic,
)
from chatforge.realtime.flood import FrameBudget, Verdict
from chatforge.realtime.wire import FRAME_WRITER, FrameWriter, text_frame
from chatforge.services.conversations import ResyncRequired
from chatforge.services.policy import require_role
from chatforge.store.models import Role, User
from chatforge.web.origin import allowed_origins

log = logging.getLogger(__name__)

SEND_QUEUE_LIMIT = 2048
POSTS_IN_FLIGHT = 64
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


class SocketConnection:
    """One accepted socket, as the hub and the client session write to it."""

    def __init__(self, websocket: WebSocket, user: User) -> None:
        self.websocket = websocket
        self.user = user
        self.user_id = user.id
        self.conversations: set[int] = set()

    def deliver(self, envelope: Envelope) -> None:
        self._write(envelope.frame, envelope.wire)
        if envelope.frame == SESSION_REVOKED_FRAME:
            # The account was erased or closed: say so (done above), then hang up.
            asyncio.get_running_loop().create_task(self.close(POLICY_VIOLATION))

    def push(self, frame: str) -> None:
        self._write(frame, None)

    def send(self, frame: dict[str, Any]) -> None:
        self._write(dumps(frame), None)

    def _write(self, frame: str, wire: bytes | None) -> None:
        raise NotImplementedError

    async def finish(self) -> None:
        """Hand over what is still waiting to be sent."""

    async def close(self, code: int) -> None:
        raise NotImplementedError


class DirectConnection(SocketConnection):
    """A socket written through its transport: no queue, no task, no await per frame."""

    def __init__(self, websocket: WebSocket, user: User, writer: FrameWriter) -> None:
        super().__init__(websocket, user)
        self._writer = writer

    def deliver(self, envelope: Envelope) -> None:
        # The fan-out calls this once per recipient: keep it to one call and one comparison.
        if not self._writer.write(envelope.wire):
            self._too_slow()
        elif envelope.frame == SESSION_REVOKED_FRAME:
            self._writer.close(POLICY_VIOLATION)

    def _write(self, frame: str, wire: bytes | None) -> None:
        if not self._writer.write(wire if wire is not None else text_frame(frame)):
            self._too_slow()

    def _too_slow(self) -> None:
        log.warning("closing slow socket of user %s", self.user_id)
        self._writer.close(TRY_AGAIN_LATER)

    async def close(self, code: int) -> None:
        self._writer.close(code)


class QueuedConnection(SocketConnection):
    """A socket written with ``send_text`` by one task draining a bounded queue.

    Used under ASGI servers that offer no frame writer; a slow client never slows the fan-out
    to everyone else, and one too slow to drain its queue is disconnected.
    """

    def __init__(self, websocket: WebSocket, user: User) -> None:
        super().__init__(websocket, user)
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(SEND_QUEUE_LIMIT)
        self._writer = asyncio.create_task(self._drain())

    def _write(self, frame: str, wire: bytes | None) -> None:
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("closing slow socket of user %s", self.user_id)
            self._writer.cancel()
            asyncio.get_running_loop().create_task(self._close_socket(TRY_AGAIN_LATER))

    async def _drain(self) -> None:
        try:
            while (frame := await self._queue.get()) is not None:
                await self.websocket.send_text(frame)
        except (WebSocketDisconnect, RuntimeError, OSError):
            # The client went away; the receive loop notices and cleans up.
            return

    async def _close_socket(self, code: int) -> None:
        with contextlib.suppress(Exception):
            await self.websocket.close(code)

    async def close(self, code: int) -> None:
        await self.finish()
        await self._close_socket(code)

    async def finish(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer, 2)
        self._writer.cancel()


def connect(websocket: WebSocket, user: User, send_buffer_bytes: int) -> SocketConnection:
    """The fastest connection the serving protocol allows (see ``realtime/wire.py``)."""
    writer = websocket.scope.get("extensions", {}).get(FRAME_WRITER)
    if isinstance(writer, FrameWriter):
        writer.limit = send_buffer_bytes
        return DirectConnection(websocket, user, writer)
    return QueuedConnection(websocket, user)


async def authenticate(websocket: WebSocket, ctx: AppContext) -> User | None:
    """The user of a token (query or header) or of the session cookie with a matching Origin."""
    token = websocket.query_params.get("token")
    header = websocket.headers.get("authorization", "")
    if token is None and header.lower().startswith("bearer "):
        token = header[7:].strip()
    if token is None:
        token = websocket.cookies.get(SESSION_COOKIE)
        if token is None:
            return None
        # Cookies ride along on cross-site WebSocket handshakes; only our own pages may use them.
        origin = websocket.headers.get("origin")
        if origin is None or origin.rstrip("/") not in allowed_origins(websocket, ctx.settings):
            return None
    try:
        claims = ctx.tokens.read(token)
        if ctx.flood_cooldown.active(claims.user_id):
            return None
        return await ctx.accounts.user_for_token(claims)
    except ChatforgeError:
        return None


async def websocket_endpoint(websocket: WebSocket) -> None:
    ctx: AppContext = websocket.app.state.ctx
    user = await authenticate(websocket, ctx)
    if user is None:
        # Closing before accept refuses the handshake (HTTP 403).
        await websocket.close(POLICY_VIOLATION)
        return
    await websocket.accept()
    headers = websocket.scope.get("headers")
    if isinstance(headers, list):
        # Nothing reads the handshake's headers after authentication, and a process holds many
        # idle sockets: a kilobyte each is worth giving back.
        headers.clear()
    connection = connect(websocket, user, ctx.settings.ws_send_buffer_bytes)
    session = ClientSession(ctx, connection)
    budget = FrameBudget(rate=ctx.settings.ws_frames_per_second, burst=ctx.settings.ws_frame_burst)
    await session.open()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            verdict = budget.take()
            if verdict is not Verdict.accept:
                # Refused before parsing: a flood costs this process as little as possible.
                if verdict is Verdict.refuse:
                    session.refuse_flood(budget.retry_after)
                elif verdict is Verdict.disconnect:
                    log.warning("closing flooding socket of user %s", user.id)
                    ctx.flood_cooldown.start(user.id)
                    await connection.close(POLICY_VIOLATION)
                    return
                continue
            text = message.get("text")
            if text is None:
                # Frames are JSON text; a binary frame is refused like any bad frame.
                session.refuse_binary()
                continue
            await session.receive_text(text)
    except WebSocketDisconnect:
        pass
    finally:
        # Messages the client sent before leaving are stored (their acks go nowhere).
        await session.settle()
        await session.close()
        if websocket.application_state is not WebSocketState.DISCONNECTED:
            await connection.finish()


class ClientSession:
    """The frames of one socket, dispatched to the services."""

    def __init__(self, ctx: AppContext, connection: SocketConnection) -> None:
        self.ctx = ctx
        self.connection = connection
        self.user = connection.user
        self._posting: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        hub = self.ctx.hub
        await hub.join(self.connection, user_topic(self.user.id))
        await hub.join(self.connection, PRESENCE_TOPIC)
        came_online = await self.ctx.presence.connected(self.user.id, self.user.role)
        self.connection.send(
            {
                "type": "hello",
                "user_id": self.user.id,
                "role": self.user.role.value,
                "display_name": self.user.display_name,
            }
        )
        if came_online and self.user.role in (Role.moderator, Role.admin):
            await self._moderators_changed()

    async def close(self) -> None:
        await self.ctx.hub.disconnect(self.connection)
        await self.ctx.typing.stop_all(self.user.id, self.user.display_name)
        went_offline = await self.ctx.presence.disconnected(self.user.id, self.user.role)
        if went_offline and self.user.role in (Role.moderator, Role.admin):
            await self._moderators_changed()

    async def _moderators_changed(self) -> None:
        online = len(await self.ctx.presence.online_moderators())
        frame = {"type": "presence", "moderators_online": online}
        await self.ctx.log.publish([Envelope(topic=PRESENCE_TOPIC, frame=dumps(frame))])
        await self.ctx.support.publish_queue()

    async def handle_text(self, text: str) -> None:
        """Handle one frame, returning when it is done."""
        parsed = self._parse(text)
        if parsed is not None:
            await self._handle(*parsed)

    async def receive_text(self, text: str) -> None:
        """Handle one frame of the socket's stream; chat messages are pipelined.

        A client sending many messages need not wait for each ack before the next one is
        taken: up to ``POSTS_IN_FLIGHT`` messages are posted at once, so they can share a
        group commit. They still get their ``seq`` in the order they arrived (posts reach the
        writer in the order they start). Any other frame waits until the messages before it are
        done, so "send, then unsubscribe" or "send, then leave" keep their meaning.
        """
        parsed = self._parse(text)
        if parsed is None:
            return
        frame, raw = parsed
        if isinstance(frame, protocol.ChatMessage):
            if len(self._posting) >= POSTS_IN_FLIGHT:
                await asyncio.wait(self._posting, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.create_task(self._handle(frame, raw))
            self._posting.add(task)
            task.add_done_callback(self._posting.discard)
            return
        await self.settle()
        await self._handle(frame, raw)

    async def settle(self) -> None:
        """Wait for the messages still being posted."""
        if self._posting:
            await asyncio.wait(self._posting)

    def _parse(self, text: str) -> tuple[Any, Any] | None:
        """The frame and its raw JSON, or None after answering with an error frame."""
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            # RecursionError: thousands of nested brackets, deeper than the parser goes.
            self._error("bad_json", "Frames are JSON objects.")
            return None
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind not in protocol.CLIENT_TYPES:
            self._error("unknown_type", f"Unknown frame type {str(kind)[:40]!r}.")
            return None
        try:
            frame = protocol.CLIENT_FRAME.validate_python(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'][1:]) or 'frame'}: {e['msg']}"
                for e in exc.errors()
            )
            self._error("invalid_frame", problems, client_id=_client_id(raw))
            return None
        return frame, raw

    async def _handle(self, frame: Any, raw: Any) -> None:
        try:
            await self._dispatch(frame)
        except ResyncRequired as exc:
            self.connection.send(
                {
                    "type": "resync_required",
                    "conversation_id": getattr(frame, "conversation_id", None),
                    "last_seq": exc.last_seq,
                }
            )
        except ChatforgeError as exc:
            self._error(
                exc.code,
                exc.message,
                client_id=_client_id(raw),
                retry_after=getattr(exc, "retry_after", None),
                conversation_id=getattr(frame, "conversation_id", None),
            )

    def refuse_flood(self, retry_after: int) -> None:
        self._error("rate_limited", "Too many frames; slow down.", retry_after=retry_after)

    def refuse_binary(self) -> None:
        self._error("bad_json", "Frames are JSON text, not binary.")

    async def _dispatch(self, frame: Any) -> None:
        match frame:
            case protocol.Ping():
                self.connection.send({"type": "pong", "nonce": frame.nonce})
            case protocol.Subscribe():
                await self._subscribe(frame.conversation_id, frame.after_seq)
            case protocol.Unsubscribe():
                self.connection.conversations.discard(frame.conversation_id)
                await self.ctx.hub.detach(self.connection, frame.conversation_id)
                self.connection.send(
                    {"type": "unsubscribed", "conversation_id": frame.conversation_id}
                )
            case protocol.ChatMessage():
                result = await self.ctx.messages.post(
                    self.user,
                    frame.conversation_id,
                    frame.body,
                    client_id=frame.client_id,
                    recipient_id=frame.recipient_id,
                    reply_to=frame.reply_to,
                )
                self.connection.send(
                    {
                        "type": "ack",
                        "client_id": frame.client_id,
                        "conversation_id": frame.conversation_id,
                        "seq": result.seq,
                        "message_id": result.message_id,
                        "duplicate": result.duplicate,
                    }
                )
            case protocol.BotMessage():
                reply = await self.ctx.web_chat.send(self.user, frame.body, frame.client_id)
                self.connection.send(
                    {
                        "type": "bot_ack",
                        "client_id": frame.client_id,
                        "conversation_id": reply.conversation_id,
                        "duplicate": reply.duplicate,
                        "handoff_notice": reply.handoff_notice,
                        "support_conversation_id": reply.support_conversation_id,
                    }
                )
            case protocol.Typing():
                self._require_subscribed(frame.conversation_id)
                if frame.type == "typing_start":
                    await self.ctx.typing.start(
                        frame.conversation_id, self.user.id, self.user.display_name
                    )
                else:
                    await self.ctx.typing.stop(
                        frame.conversation_id, self.user.id, self.user.display_name
                    )
            case protocol.SubscribeQueue():
                require_role(self.user, Role.moderator)
                if frame.type == "subscribe_queue":
                    await self.ctx.hub.join(self.connection, QUEUE_TOPIC)
                    await self.ctx.support.publish_queue()
                else:
                    await self.ctx.hub.leave(self.connection, QUEUE_TOPIC)
            case protocol.RoomAction():
                raw_type: str = getattr(frame, "type", "")
                seq = await self._room_action(frame)
                self.connection.send(
                    {
                        "type": "done",
                        "action": raw_type,
                        "conversation_id": frame.conversation_id,
                        "client_id": frame.client_id,
                        "seq": seq,
                    }
                )

    async def _room_action(self, frame: protocol.RoomAction) -> int | None:
        """Run a live-session action through the same services as REST; the ``seq`` of its
        event, or None when nothing changed."""
        user, conversation_id = self.user, frame.conversation_id
        match frame:
            case protocol.SessionMembership(type="join_session"):
                await self.ctx.sessions.enter(user, conversation_id)
            case protocol.SessionMembership():
                await self.ctx.sessions.leave(user, conversation_id)
                # Having left, this socket must stop receiving the room.
                self.connection.conversations.discard(conversation_id)
                await self.ctx.hub.detach(self.connection, conversation_id)
            case protocol.ReactionFrame():
                change = (
                    self.ctx.reactions.toggle
                    if frame.type == "reaction_added"
                    else self.ctx.reactions.remove
                )
                return (await change(user, conversation_id, frame.message_id, frame.emoji)).seq
            case protocol.HandRaised():
                await self.ctx.hands.raise_hand(user, conversation_id)
            case protocol.HandLowered():
                await self.ctx.hands.lower_hand(user, conversation_id, frame.user_id)
            case protocol.AcknowledgeHand():
                await self.ctx.hands.acknowledge(user, conversation_id, frame.user_id)
            case protocol.DeleteMessage():
                return await self.ctx.moderation.delete_message(
                    user, conversation_id, frame.message_id
                )
            case protocol.MuteUser():
                await self.ctx.moderation.mute(
                    user,
                    conversation_id,
                    frame.user_id,
                    duration_minutes=frame.duration_minutes,
                    reason=frame.reason,
                )
            case protocol.UnmuteUser():
                await self.ctx.moderation.unmute(user, conversation_id, frame.user_id)
            case protocol.SetSlowMode():
                await self.ctx.sessions.set_slow_mode(user, conversation_id, frame.seconds)
        return None

    async def _subscribe(self, conversation_id: int, after_seq: int) -> None:
        hub = self.ctx.hub
        # Attach first (live events buffer), then replay from the database, then go live:
        # whatever commits during the replay is either in it or in the buffer, never lost.
        subscription = await hub.attach(self.connection, conversation_id)
        try:
            replay = await self.ctx.conversations.replay(self.user, conversation_id, after_seq)
        except BaseException:
            await hub.detach(self.connection, conversation_id)
            raise
        self.connection.conversations.add(conversation_id)
        self.connection.send(
            {
                "type": "subscribed",
                "conversation_id": conversation_id,
                "after_seq": after_seq,
                "last_seq": replay.last_seq,
                "replayed": len(replay.frames),
            }
        )
        for frame in replay.frames:
            self.connection.push(frame)
        hub.go_live(subscription, replay.last_seq)

    def _require_subscribed(self, conversation_id: int) -> None:
        if conversation_id not in self.connection.conversations:
            raise Forbidden("Subscribe to the conversation first.", code="not_subscribed")

    def _error(
        self,
        code: str,
        message: str,
        *,
        client_id: str | None = None,
        retry_after: int | None = None,
        conversation_id: int | None = None,
    ) -> None:
        self.connection.send(
            {
                "type": "error",
                "code": code,
                "message": message,
                "retry_after": retry_after,
                "client_id": client_id,
                "conversation_id": conversation_id,
            }
        )


def _client_id(raw: Any) -> str | None:
    value = raw.get("client_id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else None
