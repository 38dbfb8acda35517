"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chatforge.store.models import Rating, Role


class Body(BaseModel):
    """Request bodies reject unknown fields, so a typo is an error instead of being ignored."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorOut(BaseModel):
    detail: str
    code: str


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class InvalidOut(BaseModel):
    """A 422: a domain ``Invalid`` (``detail``, ``code``) or a request that failed validation,
    which also lists the fields (``errors``); the raw input is never echoed."""

    detail: str
    code: str
    errors: list[FieldError] | None = None


# The services check these with precise error codes (``invalid_display_name``,
# ``empty_body``, ``invalid_emoji``...); the OpenAPI document states the same rules, so clients
# and fuzzers know what is accepted.
# Control characters other than whitespace are refused; whitespace runs collapse to one space.
DISPLAY_NAME_RULE: dict[str, Any] = {
    "pattern": r"^[^\x00-\x08\x0e-\x1b]*[^\x00-\x08\x0e-\x1b\s][^\x00-\x08\x0e-\x1b]*$"
}
MESSAGE_RULE: dict[str, Any] = {"pattern": r"^[^\x00]*[^\x00\s][^\x00]*$", "maxLength": 4000}
EMOJI_RULE: dict[str, Any] = {"enum": ["👍", "👏", "❤️", "🔥"]}
CLIENT_ID_RULE: dict[str, Any] = {"pattern": r"^[\x20-\x7e]+$"}


class RegisterIn(Body):
    username: str = Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=8, max_length=128)
    display_name: str | None = Field(
        default=None, min_length=1, max_length=64, json_schema_extra=DISPLAY_NAME_RULE
    )


class TokenIn(Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class UserOut(Out):
    id: int
    username: str
    display_name: str
    role: Role
    is_active: bool
    created_at: datetime


class ErasureOut(BaseModel):
    user_id: int
    messages: int
    """Messages whose text was replaced."""
    events: int
    """Events whose payload was scrubbed."""
    audit_records: int
    """Audit records whose detail was scrubbed."""


class UserListOut(BaseModel):
    items: list[UserOut]
    total: int
    offset: int
    limit: int


class ProfileIn(Body):
    display_name: str = Field(min_length=1, max_length=64, json_schema_extra=DISPLAY_NAME_RULE)


class PasswordChangeIn(Body):
    current_password: str = Field(min_length=1, max_length=128)
    new_password: str = Field(min_length=8, max_length=128)


class PasswordResetIn(Body):
    password: str = Field(min_length=8, max_length=128)


class UserPatch(Body):
    role: Role | None = None
    active: bool | None = None


class TopicIn(Body):
    name: str = Field(min_length=1, max_length=80)
    description: str = Field(default="", max_length=500)


class TopicPatch(Body):
    name: str | None = Field(default=None, min_length=1, max_length=80)
    description: str | None = Field(default=None, max_length=500)
    active: bool | None = None


class TopicOut(Out):
    id: int
    name: str
    description: str
    is_active: bool


class FeatureIn(Body):
    body: str = Field(max_length=10_000)


class FeaturesOut(BaseModel):
    roles: dict[Role, str]


class HealthOut(BaseModel):
    status: str
    database: str
    broker: str


class ConversationOpenIn(Body):
    topic_id: int = Field(ge=1, le=2**31 - 1)


class ConversationOut(BaseModel):
    id: int
    kind: str
    status: str
    title: str
    topic_id: int | None
    topic_name: str | None
    owner_id: int
    owner_name: str
    assignee_id: int | None
    assignee_name: str | None
    channel: str
    last_seq: int
    created_at: datetime
    claimed_at: datetime | None
    first_response_at: datetime | None
    ended_at: datetime | None
    user_rating: str | None
    user_rating_comment: str | None
    seconds_to_first_response: float | None
    handling_seconds: float | None


class QueuePositionOut(BaseModel):
    position: int
    estimated_wait_seconds: int


class RatingIn(Body):
    rating: Rating
    comment: str | None = Field(default=None, max_length=1000)


class TransferIn(Body):
    moderator_id: int = Field(ge=1, le=2**31 - 1)


class MessageIn(Body):
    body: str = Field(max_length=60_000, json_schema_extra=MESSAGE_RULE)
    client_id: str | None = Field(
        default=None, min_length=1, max_length=64, json_schema_extra=CLIENT_ID_RULE
    )
    recipient_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    reply_to: int | None = Field(default=None, ge=1, le=2**31 - 1)


class MessageAck(BaseModel):
    seq: int
    message_id: int
    duplicate: bool


class ReactorOut(Out):
    id: int
    name: str


class ReactionSummaryOut(Out):
    emoji: str
    count: int
    users: list[ReactorOut]


class MessageOut(Out):
    id: int
    conversation_id: int
    seq: int
    sender_id: int
    body: str
    recipient_id: int | None
    reply_to_id: int | None
    client_id: str | None
    created_at: datetime
    deleted_at: datetime | None
    deleted: bool = False
    reactions: list[ReactionSummaryOut] = []


class EventsOut(BaseModel):
    events: list[dict[str, Any]]
    next_after_seq: int
    last_seq: int


class SupportStatusOut(BaseModel):
    moderators_online: int
    pending: int


class SessionCreateIn(Body):
    title: str = Field(min_length=1, max_length=120)
    topic_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class ParticipantOut(Out):
    user_id: int
    name: str
    role: str
    joined_at: datetime


class HandOut(Out):
    user_id: int
    name: str
    raised_at: datetime
    acknowledged: bool


class MuteIn(Body):
    user_id: int = Field(ge=1, le=2**31 - 1)
    duration_minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 365)
    reason: str = Field(default="", max_length=200)


class MuteOut(Out):
    user_id: int
    reason: str
    until: datetime | None
    muted_by_id: int | None


class RoomOut(BaseModel):
    session: ConversationOut
    participants: list[ParticipantOut]
    hands: list[HandOut]
    slow_mode_seconds: int
    is_instructor: bool
    my_mute: MuteOut | None
    mutes: list[MuteOut]


class ReactionIn(Body):
    emoji: str = Field(min_length=1, max_length=16, json_schema_extra=EMOJI_RULE)


class ReactionOut(BaseModel):
    emoji: str
    added: bool
    count: int
    changed: bool
    seq: int | None


class SlowModeIn(Body):
    seconds: int = Field(ge=0, le=3600)


class SeqOut(BaseModel):
    seq: int | None
