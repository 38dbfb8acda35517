"""The pure parts of datasets: escaping, redaction, turn merging and Cohen's kappa."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
import yaml

from chatforge.datasets.formats import ExportFormat, csv_line, render, yaml_string
from chatforge.datasets.pii import redact
from chatforge.datasets.records import DatasetConversation, DatasetMessage, turns
from chatforge.services.agreement import cohens_kappa

NOW = datetime(2026, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        'quote " and \\ backslash',
        "new\nline\ttab\r",
        "- not a list: {not: a map} # no comment",
        "\x00\x07\x1b\x7f\x85\x9f",
        "emoji 😀, é, 中文, \u2028 \ufeff \ufffe",
        "yes",
        "null",
        "",
    ],
)
def test_yaml_strings_read_back_exactly(text: str) -> None:
    assert yaml.safe_load(yaml_string(text)) == text


def test_csv_cells_never_start_a_formula() -> None:
    line = csv_line(["=1+1", "+49 30", "-2", "@SUM(A1)", "\tx", "plain", 3])
    assert next(csv.reader(io.StringIO(line))) == [
        "'=1+1",
        "'+49 30",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "plain",
        "3",
    ]


def test_redaction_of_emails_and_phone_numbers_only() -> None:
    assert redact("write to a.b+c@mail.example.org today") == "write to [email] today"
    assert redact("call +27 82 555 1234 or (021) 555-0199") == "call [phone] or [phone]"
    kept = "on 2026-01-02 at 10:30, order 12345, costs 1.50"
    assert redact(kept) == kept


def message(n: int, role: str, text: str, original: str | None = None) -> DatasetMessage:
    return DatasetMessage(n, role, text, original or text, NOW)


def test_turns_merge_consecutive_messages_of_one_side() -> None:
    conversation = DatasetConversation(
        1,
        "support",
        None,
        "web",
        NOW,
        None,
        None,
        None,
        (),
        (
            message(1, "user", "a"),
            message(2, "user", "b"),
            message(3, "assistant", "c!", "c"),
            message(4, "assistant", "d"),
        ),
    )
    merged = turns(conversation)
    assert [(t.role, t.text, t.original, t.corrected, t.message_ids) for t in merged] == [
        ("user", "a\nb", "a\nb", False, (1, 2)),
        ("assistant", "c!\nd", "c\nd", True, (3, 4)),
    ]
    # Nothing to train on without an answer; an empty export is still a valid document.
    user_only = DatasetConversation(
        2, "bot", None, "web", NOW, None, None, None, (), (message(5, "user", "x"),)
    )
    assert "".join(render(ExportFormat.openai_jsonl, [user_only])) == ""
    assert "".join(render(ExportFormat.sharegpt, [user_only])) == "[]\n"


def test_cohens_kappa() -> None:
    assert cohens_kappa([]) is None
    assert cohens_kappa([("a", "a"), ("b", "b")]) == 1.0
    assert cohens_kappa([("a", "a"), ("a", "a")]) == 1.0  # one answer throughout
    assert cohens_kappa([("a", "b"), ("b", "a")]) == -1.0
    # Textbook example: 50 items, 20 yes/yes, 15 no/no, 5 yes/no, 10 no/yes -> 0.4
    pairs = [("y", "y")] * 20 + [("n", "n")] * 15 + [("y", "n")] * 5 + [("n", "y")] * 10
    assert cohens_kappa(pairs) == pytest.approx(0.4)
