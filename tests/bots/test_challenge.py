"""The challenge bot (seed 002) driven through the pure machine, and its challenge files."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chatforge.bots.builtin.challenge import SHIPPED, ChallengeLibrary, make_challenge_bot
from chatforge.bots.machine import BotDefinition, Outcome, Snapshot, step
from chatforge.bots.quota import RollingQuota
from chatforge.settings import SettingsError

NOW = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)
QUOTA = RollingQuota(5, timedelta(hours=24))
LIBRARY = ChallengeLibrary.load()


def bot(rng: random.Random | None = None) -> BotDefinition:
    return make_challenge_bot(LIBRARY, QUOTA, rng=rng or random.Random(7))


async def ask(
    text: str, counted_at: tuple[datetime, ...] = (), definition: BotDefinition | None = None
) -> Outcome:
    return await step(
        definition or bot(), Snapshot(user_id=1, state="menu", counted_at=counted_at), text, NOW
    )


def test_the_shipped_set_has_at_least_ten_challenges_per_category_and_level() -> None:
    assert set(LIBRARY.challenges) == {"python", "sql", "stats"}
    for category, levels in LIBRARY.challenges.items():
        assert set(levels) == {"easy", "medium", "hard"}, category
        for level, items in levels.items():
            assert len(set(items)) >= 10, (category, level)
    assert sorted(p.name for p in SHIPPED.glob("*.json")) == [
        "python.json",
        "sql.json",
        "stats.json",
    ]


@pytest.mark.parametrize("text", ["python easy", "SQL  Hard", "medium stats"])
async def test_a_keyword_returns_a_challenge_of_that_category_and_counts(text: str) -> None:
    outcome = await ask(text)
    words = sorted(text.lower().split())
    category = next(w for w in words if w in LIBRARY.challenges)
    level = next(w for w in words if w != category)
    [reply] = outcome.replies
    header, challenge, footer = reply.split("\n\n")
    assert header == f"{category.capitalize()} · {level}"
    assert challenge in LIBRARY.challenges[category][level]
    assert footer == "(4 challenges left in this 24 h window)"
    assert outcome.interaction is not None
    assert (outcome.interaction.keyword, outcome.interaction.counted) == (
        f"{category} {level}",
        True,
    )


async def test_help_lists_every_command_and_is_not_counted() -> None:
    outcome = await ask("help", counted_at=(NOW - timedelta(hours=1),) * 5)
    [text] = outcome.replies
    for keyword in ("python: easy / medium / hard", "sql: easy / medium / hard", "mentor"):
        assert keyword in text
    assert outcome.interaction is not None
    assert (outcome.interaction.outcome, outcome.interaction.counted) == ("help", False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pyhton easy", "I don't know “pyhton easy”. Try python easy, sql medium, stats hard"),
        ("sql", "Which level? Send one of: sql easy, sql medium, sql hard."),
        ("python impossible", "I don't know"),
        ("tell me a joke please", "send help for the full list"),
    ],
)
async def test_unknown_keywords_get_a_helpful_answer_and_are_not_counted(
    text: str, expected: str
) -> None:
    outcome = await ask(text)
    [reply] = outcome.replies
    assert expected in reply
    assert outcome.interaction is not None
    assert (outcome.interaction.outcome, outcome.interaction.counted) == ("unknown", False)


async def test_the_sixth_request_in_24_hours_is_refused_politely_with_the_next_time() -> None:
    earlier = tuple(NOW - timedelta(hours=h) for h in (20, 10, 5, 2, 1))
    outcome = await ask("python hard", counted_at=earlier)
    [reply] = outcome.replies
    assert reply.startswith("You have had your 5 challenges for the last 24 hours.")
    # The oldest (20 h ago) leaves the window in 4 h: 14:30 today.
    assert "Your next one is possible today at 14:30 UTC." in reply
    assert outcome.interaction is not None
    assert (outcome.interaction.outcome, outcome.interaction.counted) == ("refused", False)


async def test_an_internal_error_apologises_and_is_not_counted() -> None:
    class BrokenRandom(random.Random):
        def choice(self, seq: object) -> str:  # type: ignore[override]
            raise OSError("challenge store unavailable")

    outcome = await ask("python easy", definition=bot(BrokenRandom()))
    assert outcome.replies == [
        "Sorry, we ran into a problem on our side. This was not counted as one of your"
        " challenges; please try again."
    ]
    assert outcome.interaction is not None
    assert (outcome.interaction.outcome, outcome.interaction.counted) == ("error", False)


async def test_mentor_asks_for_a_hand_off() -> None:
    outcome = await ask("mentor")
    assert outcome.handoff is not None
    assert outcome.interaction is not None
    assert outcome.interaction.outcome == "handoff"


async def test_an_admin_can_replace_the_challenges(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps({"basics": ["Make a vector of 1 to 10."]}))
    library = ChallengeLibrary.load(tmp_path)
    definition = make_challenge_bot(library, QUOTA)
    outcome = await ask("r basics", definition=definition)
    assert "Make a vector of 1 to 10." in outcome.replies[0]
    assert "python" in (await ask("python easy", definition=definition)).replies[0].lower()
    assert "• r: basics" in (await ask("help", definition=definition)).replies[0]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no challenge files"),
        ({"python.json": "{oops"}, "python.json: not readable JSON"),
        ({"python.json": json.dumps({"easy": []})}, "level 'easy' needs a non-empty list"),
        ({"python.json": json.dumps(["a"])}, "expected an object"),
        ({"Bad Name.json": json.dumps({"easy": ["a"]})}, "category file name"),
        ({"sql.json": json.dumps({"easy": ["x" * 1501]})}, "over 1500 characters"),
    ],
)
def test_unusable_challenge_files_fail_at_start_naming_the_file(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    with pytest.raises(SettingsError, match=message):
        ChallengeLibrary.load(tmp_path)
