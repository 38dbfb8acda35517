"""Frames a client sends over ``/ws``, validated at the edge (see docs/protocol.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

ConversationId = Annotated[int, Field(ge=1, le=2**31 - 1)]
UserId = Annotated[int, Field(ge=1, le=2**31 - 1)]


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Subscribe(Frame):
    type: Literal["subscribe"]
    conversation_id: ConversationId
    after_seq: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0


class Unsubscribe(Frame):
    type: Literal["unsubscribe"]
    conversation_id: ConversationId


class ChatMessage(Frame):
    type: Literal["chat_message"]
    conversation_id: ConversationId
    # The length limit is the service's (a precise "body_too_long" error); this only caps abuse.
    body: Annotated[str, Field(max_length=60_000)]
    client_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    recipient_id: UserId | None = None
    reply_to: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = None


class BotMessage(Frame):
    """A message to the web channel's bot (the chat widget)."""

    type: Literal["bot_message"]
    body: Annotated[str, Field(max_length=60_000)]
    client_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class Typing(Frame):
    type: Literal["typing_start", "typing_stop"]
    conversation_id: ConversationId


class SubscribeQueue(Frame):
    type: Literal["subscribe_queue", "unsubscribe_queue"]


ClientId = Annotated[str, Field(min_length=1, max_length=64)]
MessageId = Annotated[int, Field(ge=1, le=2**31 - 1)]


class RoomAction(Frame):
    """An action in a live session room; answered with ``done`` once committed, or ``error``.

    ``client_id`` is echoed back in the answer so a client can match them.
    """

    conversation_id: ConversationId
    client_id: ClientId | None = None


class SessionMembership(RoomAction):
    type: Literal["join_session", "leave_session"]


class ReactionFrame(RoomAction):
    # reaction_added toggles the reaction; reaction_removed only ever takes it back.
    type: Literal["reaction_added", "reaction_removed"]
    message_id: MessageId
    emoji: Annotated[str, Field(min_length=1, max_length=16)]


class HandRaised(RoomAction):
    type: Literal["hand_raised"]


class HandLowered(RoomAction):
    type: Literal["hand_lowered"]
    user_id: UserId | None = None


class AcknowledgeHand(RoomAction):
    type: Literal["acknowledge_hand"]
    user_id: UserId


class DeleteMessage(RoomAction):
    type: Literal["delete_message"]
    message_id: MessageId


class MuteUser(RoomAction):
    type: Literal["mute_user"]
    user_id: UserId
    duration_minutes: Annotated[int, Field(ge=1, le=60 * 24 * 365)] | None = None
    reason: Annotated[str, Field(max_length=200)] = ""


class UnmuteUser(RoomAction):
    type: Literal["unmute_user"]
    user_id: UserId


class SetSlowMode(RoomAction):
    type: Literal["set_slow_mode"]
    seconds: Annotated[int, Field(ge=0, le=3600)]


class Ping(Frame):
    type: Literal["ping"]
    nonce: Annotated[str, Field(max_length=64)] | None = None


ClientFrame = Annotated[
    Subscribe
    | Unsubscribe
    | ChatMessage
    | BotMessage
    | Typing
    | SubscribeQueue
    | Ping
    | SessionMembership
    | ReactionFrame
    | HandRaised
    | HandLowered
    | AcknowledgeHand
    | DeleteMessage
    | MuteUser
    | UnmuteUser
    | SetSlowMode,
    Field(discriminator="type"),
]
CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
CLIENT_TYPES = frozenset(
    {
        "subscribe",
        "unsubscribe",
        "chat_message",
        "bot_message",
        "typing_start",
        "typing_stop",
        "subscribe_queue",
        "unsubscribe_queue",
        "ping",
        "join_session",
        "leave_session",
        "reaction_added",
        "reaction_removed",
        "hand_raised",
        "hand_lowered",
        "acknowledge_hand",
        "delete_message",
        "mute_user",
        "unmute_user",
        "set_slow_mode",
    }
)
