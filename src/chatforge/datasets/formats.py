"""Dataset formats (N4, N6). Each is pure: a conversation in, its lines or items out.

A ``Writer`` frames the items of a format (a JSON array, a CSV header, a YAML document) so that
an export can be written one batch of conversations at a time and never held whole in memory.
``render`` is the same for a finite list of conversations.

=======================  ===================================================================
format                   layout
=======================  ===================================================================
openai-jsonl             JSON lines ``{"messages": [{"role", "content"}, ...]}``
sharegpt                 JSON array of ``{"id", "conversations": [{"from", "value"}, ...]}``
chatterbot               ChatterBot YAML corpus: ``categories`` and ``conversations`` (lists)
csv                      one row per message, header ``CSV_COLUMNS``
json                     JSON array of conversations with every message and its annotations
trl-conversational       JSON lines ``{"messages": [...]}`` (TRL conversational)
trl-prompt-completion    JSON lines ``{"prompt": [...], "completion": [assistant turn]}``
trl-preference           JSON lines ``{"prompt", "chosen", "rejected"}``: corrected vs original
trl-unpaired             JSON lines ``{"prompt", "completion", "label"}`` from good / bad turns
label-studio             JSON array of tasks ``{"data": {"dialogue": [{"author", "text"}]}}``
argilla                  JSON lines records ``{"id", "chat", "rating", "labels", ...}``
=======================  ===================================================================

Chat formats only keep conversations with an assistant turn; turn formats (prompt-completion,
preference, unpaired) emit one line per qualifying assistant turn that has a prompt before it.
"""

from __future__ import annotations

import csv
import enum
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from chatforge.datasets.records import ASSISTANT, USER, DatasetConversation, Turn, turns


class ExportFormat(enum.StrEnum):
    openai_jsonl = "openai-jsonl"
    sharegpt = "sharegpt"
    chatterbot = "chatterbot"
    csv = "csv"
    json = "json"
    trl_conversational = "trl-conversational"
    trl_prompt_completion = "trl-prompt-completion"
    trl_preference = "trl-preference"
    trl_unpaired = "trl-unpaired"
    label_studio = "label-studio"
    argilla = "argilla"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _messages(items: Sequence[Turn]) -> list[dict[str, str]]:
    return [turn.as_message() for turn in items]


def _has_answer(items: Sequence[Turn]) -> bool:
    return any(turn.role == ASSISTANT for turn in items)


def _assistant_turns(items: Sequence[Turn]) -> Iterator[tuple[list[dict[str, str]], Turn]]:
    """Each assistant turn with the conversation before it as the prompt (never empty)."""
    for index, turn in enumerate(items):
        if turn.role == ASSISTANT and index > 0:
            yield _messages(items[:index]), turn


# -- one function per format: a conversation in, its items out --------------------------------


def openai_chat(conversation: DatasetConversation) -> Iterator[str]:
    items = turns(conversation)
    if _has_answer(items):
        yield _json({"messages": _messages(items)})


def sharegpt(conversation: DatasetConversation) -> Iterator[str]:
    items = turns(conversation)
    if _has_answer(items):
        speakers = {USER: "human", ASSISTANT: "gpt"}
        yield _json(
            {
                "id": f"chatforge-{conversation.id}",
                "conversations": [{"from": speakers[t.role], "value": t.text} for t in items],
            }
        )


def chatterbot(conversation: DatasetConversation) -> Iterator[str]:
    items = turns(conversation)
    if len(items) >= 2:
        first, *rest = (yaml_string(turn.text) for turn in items)
        yield "- - " + first + "".join(f"\n  - {statement}" for statement in rest)


CSV_COLUMNS = (
    "conversation_id",
    "turn",
    "message_id",
    "role",
    "text",
    "original_text",
    "corrected",
    "turn_verdict",
    "topic",
    "kind",
    "channel",
    "user_rating",
    "rating",
    "labels",
    "created_at",
)


def _verdict(value: bool | None) -> str | None:
    return None if value is None else ("good" if value else "bad")


def csv_rows(conversation: DatasetConversation) -> Iterator[str]:
    turn, role = 0, None
    for message in conversation.messages:
        if message.role != role:
            turn, role = turn + 1, message.role
        yield csv_line(
            [
                conversation.id,
                turn,
                message.message_id,
                message.role,
                message.text,
                message.original,
                "true" if message.corrected else "false",
                _verdict(message.verdict) or "",
                conversation.topic or "",
                conversation.kind,
                conversation.channel,
                conversation.user_rating or "",
                conversation.rating or "",
                ";".join(conversation.labels),
                message.created_at.isoformat(),
            ]
        )


def full_json(conversation: DatasetConversation) -> Iterator[str]:
    yield _json(
        {
            "id": conversation.id,
            "kind": conversation.kind,
            "topic": conversation.topic,
            "channel": conversation.channel,
            "created_at": conversation.created_at.isoformat(),
            "ended_at": conversation.ended_at.isoformat() if conversation.ended_at else None,
            "user_rating": conversation.user_rating,
            "rating": conversation.rating,
            "labels": list(conversation.labels),
            "messages": [
                {
                    "message_id": m.message_id,
                    "role": m.role,
                    "text": m.text,
                    "original": m.original,
                    "corrected": m.corrected,
                    "verdict": _verdict(m.verdict),
                    "created_at": m.created_at.isoformat(),
                }
                for m in conversation.messages
            ],
        }
    )


def trl_prompt_completion(conversation: DatasetConversation) -> Iterator[str]:
    for prompt, turn in _assistant_turns(turns(conversation)):
        yield _json({"prompt": prompt, "completion": [turn.as_message()]})


def trl_preference(conversation: DatasetConversation) -> Iterator[str]:
    for prompt, turn in _assistant_turns(turns(conversation)):
        if turn.corrected:
            yield _json(
                {
                    "prompt": prompt,
                    "chosen": [turn.as_message()],
                    "rejected": [turn.as_message(original=True)],
                }
            )


def trl_unpaired(conversation: DatasetConversation) -> Iterator[str]:
    for prompt, turn in _assistant_turns(turns(conversation)):
        if turn.verdict is not None:
            yield _json(
                {"prompt": prompt, "completion": [turn.as_message()], "label": turn.verdict}
            )


def label_studio(conversation: DatasetConversation) -> Iterator[str]:
    items = turns(conversation)
    if items:
        yield _json(
            {
                "data": {
                    "dialogue": [{"author": t.role, "text": t.text} for t in items],
                    "conversation_id": conversation.id,
                    "topic": conversation.topic,
                    "user_rating": conversation.user_rating,
                    "rating": conversation.rating,
                    "labels": ", ".join(conversation.labels),
                }
            }
        )


def argilla(conversation: DatasetConversation) -> Iterator[str]:
    items = turns(conversation)
    if items:
        yield _json(
            {
                "id": f"chatforge-{conversation.id}",
                "chat": _messages(items),
                "rating": conversation.rating,
                "labels": list(conversation.labels),
                "topic": conversation.topic,
                "kind": conversation.kind,
                "user_rating": conversation.user_rating,
            }
        )


# -- YAML and CSV cells -------------------------------------------------------------------------


def _yaml_escape(ch: str) -> str:
    code = ord(ch)
    if ch in {'"', "\\"}:
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    # NEL and the Unicode line / paragraph separators are line breaks to YAML: escaped too.
    printable = (
        0x20 <= code <= 0x7E
        or (0xA0 <= code <= 0xD7FF and code not in {0x2028, 0x2029})
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )
    if printable:
        return ch
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def yaml_string(text: str) -> str:
    """``text`` as a YAML double-quoted scalar; YAML parsers read back exactly ``text``."""
    return '"' + "".join(_yaml_escape(ch) for ch in text) + '"'


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_line(values: Iterable[object]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([csv_cell(v) for v in values])
    return out.getvalue()


# -- framing ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layout:
    encode: Callable[[DatasetConversation], Iterator[str]]
    media_type: str
    extension: str
    kind: str  # "lines", "array", "csv" or "yaml"


_JSONL, _ARRAY = "application/x-ndjson", "application/json"

LAYOUTS: dict[ExportFormat, Layout] = {
    ExportFormat.openai_jsonl: Layout(openai_chat, _JSONL, "jsonl", "lines"),
    ExportFormat.sharegpt: Layout(sharegpt, _ARRAY, "json", "array"),
    ExportFormat.chatterbot: Layout(chatterbot, "application/yaml", "yml", "yaml"),
    ExportFormat.csv: Layout(csv_rows, "text/csv", "csv", "csv"),
    ExportFormat.json: Layout(full_json, _ARRAY, "json", "array"),
    ExportFormat.trl_conversational: Layout(openai_chat, _JSONL, "jsonl", "lines"),
    ExportFormat.trl_prompt_completion: Layout(trl_prompt_completion, _JSONL, "jsonl", "lines"),
    ExportFormat.trl_preference: Layout(trl_preference, _JSONL, "jsonl", "lines"),
    ExportFormat.trl_unpaired: Layout(trl_unpaired, _JSONL, "jsonl", "lines"),
    ExportFormat.label_studio: Layout(label_studio, _ARRAY, "json", "array"),
    ExportFormat.argilla: Layout(argilla, _JSONL, "jsonl", "lines"),
}


class Writer:
    """Frames a format's items into one document, fed a batch of conversations at a time."""

    def __init__(self, fmt: ExportFormat, *, categories: Sequence[str] = ()) -> None:
        self.layout = LAYOUTS[fmt]
        self.categories = list(categories)
        self._empty = True

    def begin(self) -> str:
        if self.layout.kind == "csv":
            return csv_line(CSV_COLUMNS)
        if self.layout.kind == "yaml":
            names = "".join(f"\n- {yaml_string(name)}" for name in self.categories)
            return f"categories:{names or ' []'}\nconversations:"
        return "[" if self.layout.kind == "array" else ""

    def feed(self, conversations: Iterable[DatasetConversation]) -> str:
        parts: list[str] = []
        for conversation in conversations:
            for item in self.layout.encode(conversation):
                if self.layout.kind == "array":
                    parts.append(("\n" if self._empty else ",\n") + item)
                elif self.layout.kind in {"lines", "yaml"}:
                    parts.append(("\n" if self.layout.kind == "yaml" else "") + item)
                    if self.layout.kind == "lines":
                        parts.append("\n")
                else:
                    parts.append(item)
                self._empty = False
        return "".join(parts)

    def end(self) -> str:
        if self.layout.kind == "array":
            return "]\n" if self._empty else "\n]\n"
        if self.layout.kind == "yaml":
            return " []\n" if self._empty else "\n"
        return ""


def render(
    fmt: ExportFormat,
    conversations: Iterable[DatasetConversation],
    *,
    categories: Sequence[str] = (),
) -> Iterator[str]:
    """The whole document of ``conversations`` in ``fmt``, piece by piece."""
    writer = Writer(fmt, categories=categories)
    yield writer.begin()
    for conversation in conversations:
        yield writer.feed([conversation])
    yield writer.end()
