"""How far annotation has come and how much annotators agree (N5): the dashboard's numbers.

Agreement is Cohen's kappa, computed for every pair of annotators over the conversations both
annotated, for the rating and for each label (applied or not), and averaged over the pairs
(Light's kappa) to one number per question.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from sqlalchemy import func, select

from chatforge.services.access import FINISHED
from chatforge.services.policy import require_role
from chatforge.store.annotation_models import (
    Annotation,
    AnnotationLabel,
    AnnotationLabelLink,
    TurnRating,
)
from chatforge.store.database import Database
from chatforge.store.models import Conversation, ConversationStatus, Role, Topic, User


def cohens_kappa(pairs: Sequence[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa of two raters' answers, one ``(a, b)`` pair per item; None if no items.

    kappa = (p_o - p_e) / (1 - p_e), with p_o the observed agreement and p_e the agreement
    expected by chance from each rater's own distribution. When chance agreement is certain
    (both used one and the same answer throughout) the raters agree perfectly: 1.0.
    """
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    expected = sum(first[c] * second[c] for c in first.keys() | second.keys()) / (n * n)
    if expected == 1:
        return 1.0
    return (observed - expected) / (1 - expected)


@dataclass(frozen=True, slots=True)
class Agreement:
    question: str
    kappa: float | None
    pairs: int
    """Annotator pairs that share at least one conversation."""
    items: int
    """Conversations judged by both annotators of a pair, summed over the pairs."""


@dataclass(frozen=True, slots=True)
class PairAgreement:
    first: str
    second: str
    items: int
    rating_kappa: float | None


@dataclass(frozen=True, slots=True)
class TopicProgress:
    topic: str
    to_do: int
    done: int


@dataclass(frozen=True, slots=True)
class AnnotatorProgress:
    annotator: str
    conversations: int
    turns: int


@dataclass(frozen=True, slots=True)
class Dashboard:
    topics: list[TopicProgress]
    annotators: list[AnnotatorProgress]
    rating: Agreement
    labels: list[Agreement]
    pairs: list[PairAgreement]

    @property
    def to_do(self) -> int:
        return sum(t.to_do for t in self.topics)

    @property
    def done(self) -> int:
        return sum(t.done for t in self.topics)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def agreement(
    judgements: Mapping[int, Mapping[int, Hashable]], question: str
) -> tuple[Agreement, dict[tuple[int, int], tuple[int, float | None]]]:
    """Light's kappa over annotator pairs; ``judgements`` maps annotator -> item -> answer."""
    per_pair: dict[tuple[int, int], tuple[int, float | None]] = {}
    for a, b in combinations(sorted(judgements), 2):
        shared = judgements[a].keys() & judgements[b].keys()
        if shared:
            pairs = [(judgements[a][item], judgements[b][item]) for item in sorted(shared)]
            per_pair[(a, b)] = (len(pairs), cohens_kappa(pairs))
    kappas = [kappa for _, kappa in per_pair.values() if kappa is not None]
    return (
        Agreement(
            question=question,
            kappa=_mean(kappas),
            pairs=len(per_pair),
            items=sum(items for items, _ in per_pair.values()),
        ),
        per_pair,
    )


class AgreementService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def dashboard(self, actor: User) -> Dashboard:
        """Progress per topic and annotator, and the agreement report. ``Forbidden`` unless
        annotator or admin."""
        require_role(actor, Role.annotator)
        async with self.db.read() as session:
            topic_rows = await session.execute(
                select(Topic.name, Conversation.status, func.count())
                .select_from(Conversation)
                .outerjoin(Topic, Topic.id == Conversation.topic_id)
                .where(Conversation.status.in_(FINISHED))
                .group_by(Topic.name, Conversation.status)
            )
            annotations = list(
                await session.execute(
                    select(Annotation.id, Annotation.conversation_id, Annotation.annotator_id)
                    .add_columns(Annotation.rating)
                    .order_by(Annotation.id)
                )
            )
            links = list(
                await session.execute(
                    select(AnnotationLabelLink.annotation_id, AnnotationLabelLink.label_id)
                )
            )
            labels = dict(
                (await session.execute(select(AnnotationLabel.id, AnnotationLabel.name))).all()
            )
            turn_counts = dict(
                (
                    await session.execute(
                        select(TurnRating.annotator_id, func.count()).group_by(
                            TurnRating.annotator_id
                        )
                    )
                ).all()
            )
            annotator_ids = {row.annotator_id for row in annotations} | turn_counts.keys()
            names = dict(
                (
                    await session.execute(
                        select(User.id, User.display_name).where(User.id.in_(annotator_ids))
                    )
                ).all()
            )

        progress: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for topic, status, count in topic_rows:
            progress[topic or "(no topic)"][status is ConversationStatus.annotated] += count
        topics = [
            TopicProgress(name, todo, done) for name, (todo, done) in sorted(progress.items())
        ]

        ratings: dict[int, dict[int, Hashable]] = defaultdict(dict)
        conversations_of: Counter[int] = Counter()
        owner_of: dict[int, tuple[int, int]] = {}
        for annotation_id, conversation_id, annotator_id, rating in annotations:
            ratings[annotator_id][conversation_id] = rating.value
            conversations_of[annotator_id] += 1
            owner_of[annotation_id] = (annotator_id, conversation_id)
        applied: dict[int, set[tuple[int, int]]] = defaultdict(set)
        for annotation_id, label_id in links:
            applied[label_id].add(owner_of[annotation_id])

        rating_agreement, per_pair = agreement(ratings, "rating")
        label_agreements = []
        for label_id, label_name in sorted(labels.items(), key=lambda item: item[1]):
            answers = {
                annotator: {
                    conversation: (annotator, conversation) in applied[label_id]
                    for conversation in judged
                }
                for annotator, judged in ratings.items()
            }
            label_agreements.append(agreement(answers, label_name)[0])
        return Dashboard(
            topics=topics,
            annotators=[
                AnnotatorProgress(
                    names.get(annotator, f"#{annotator}"),
                    conversations_of[annotator],
                    turn_counts.get(annotator, 0),
                )
                for annotator in sorted(annotator_ids, key=lambda a: names.get(a, ""))
            ],
            rating=rating_agreement,
            labels=label_agreements,
            pairs=[
                PairAgreement(names.get(a, f"#{a}"), names.get(b, f"#{b}"), items, kappa)
                for (a, b), (items, kappa) in sorted(per_pair.items())
            ],
        )
