"""Request and response bodies of the annotation and dataset endpoints (N1-N6)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from chatforge.api.schemas import Body, ConversationOut, Out
from chatforge.store.annotation_models import TurnVerdict
from chatforge.store.models import Rating


class AnnotationListItemOut(BaseModel):
    conversation: ConversationOut
    message_count: int
    rating: Rating | None
    annotators: int


class AnnotationListOut(BaseModel):
    items: list[AnnotationListItemOut]
    total: int
    page: int
    per_page: int
    pages: int


class AnnotationIn(Body):
    rating: Rating
    labels: list[str] | None = Field(default=None, max_length=50)
    notes: str | None = Field(default=None, max_length=4000)
    topic_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class AnnotationOut(BaseModel):
    conversation_id: int
    annotator_id: int
    annotator_name: str
    rating: Rating
    labels: list[str]
    notes: str
    updated_at: datetime


class AnnotatedMessageOut(BaseModel):
    id: int
    seq: int
    sender_id: int
    sender_name: str
    role: str
    body: str
    corrected_body: str | None
    excluded: bool
    deleted: bool
    private: bool
    recipient_id: int | None
    created_at: datetime
    my_verdict: TurnVerdict | None
    good: int
    bad: int


class ConversationDetailOut(BaseModel):
    conversation: ConversationOut
    messages: list[AnnotatedMessageOut]
    annotations: list[AnnotationOut]


class CorrectionIn(Body):
    """``text``: the text to train on (null or the original text removes the correction)."""

    text: str | None = Field(default=None, max_length=4000)
    excluded: bool | None = None


class CorrectionOut(BaseModel):
    message_id: int
    conversation_id: int
    body: str
    corrected_body: str | None
    excluded: bool


class TurnRatingIn(Body):
    verdict: TurnVerdict | None


class TurnRatingOut(BaseModel):
    message_id: int
    verdict: TurnVerdict | None


class LabelIn(Body):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(default="", max_length=200)


class LabelPatch(Body):
    active: bool


class LabelOut(Out):
    id: int
    name: str
    description: str
    is_active: bool


class AgreementOut(BaseModel):
    question: str
    kappa: float | None
    pairs: int
    items: int


class TopicProgressOut(BaseModel):
    topic: str
    to_do: int
    done: int


class AnnotatorProgressOut(BaseModel):
    annotator: str
    conversations: int
    turns: int


class PairAgreementOut(BaseModel):
    first: str
    second: str
    items: int
    rating_kappa: float | None


class DashboardOut(BaseModel):
    to_do: int
    done: int
    topics: list[TopicProgressOut]
    annotators: list[AnnotatorProgressOut]
    rating: AgreementOut
    labels: list[AgreementOut]
    pairs: list[PairAgreementOut]
