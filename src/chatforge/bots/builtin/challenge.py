"""The challenge bot (B3, seed 002): ``python easy`` sends a random Python challenge.

Categories and levels come from the challenge files: one JSON file per category
(``python.json``) mapping each level to a list of challenges. The package ships a set; an admin
replaces it by pointing ``CHATFORGE_CHALLENGES_DIR`` at a directory of their own files.

Requests for a challenge are *counted*: at most ``quota.limit`` in any rolling window, after
which the user is told politely when the next one is possible. ``help`` and anything the bot
does not understand are not counted, and neither is a request that fails on our side (the
machine answers with the apology and marks the interaction failed).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from chatforge.bots.builder import BotBuilder
from chatforge.bots.machine import BotDefinition, BotUser
from chatforge.bots.quota import RollingQuota
from chatforge.settings import SettingsError

SHIPPED = Path(__file__).parent / "challenges"
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MAX_CHALLENGE = 1500  # WhatsApp messages through Twilio stop at 1600 characters
HELP_WORDS = frozenset({"help", "hi", "hello", "start", "menu", "?"})
HANDOFF_WORDS = frozenset({"mentor", "human"})
APOLOGY = (
    "Sorry, we ran into a problem on our side. This was not counted as one of your challenges;"
    " please try again."
)


@dataclass(frozen=True, slots=True)
class ChallengeLibrary:
    """Challenges by category and level, e.g. ``library.challenges["sql"]["hard"]``."""

    challenges: Mapping[str, Mapping[str, tuple[str, ...]]]

    @classmethod
    def load(cls, directory: Path | None = None) -> ChallengeLibrary:
        """Read every ``*.json`` in ``directory`` (default: the shipped set).

        Raises ``SettingsError`` naming the file when one is unusable, so a bad replacement set
        stops the server at start instead of failing users later.
        """
        folder = directory or SHIPPED
        files = sorted(folder.glob("*.json")) if folder.is_dir() else []
        if not files:
            raise SettingsError(f"no challenge files (*.json) in {folder}")
        challenges: dict[str, dict[str, tuple[str, ...]]] = {}
        for path in files:
            category = path.stem.lower()
            if not NAME_RE.fullmatch(category):
                raise SettingsError(f"{path}: a category file name is lower-case letters/digits")
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise SettingsError(f"{path}: not readable JSON ({exc})") from exc
            challenges[category] = _levels(path, data)
        return cls(challenges)

    def levels(self, category: str) -> list[str]:
        return list(self.challenges.get(category, {}))

    def keywords(self) -> list[str]:
        return [f"{c} {level}" for c, levels in self.challenges.items() for level in levels]

    def examples(self, count: int = 3) -> list[str]:
        """A few keywords from different categories and levels (``python easy, sql medium``)."""
        picks = []
        for i, (category, levels) in enumerate(list(self.challenges.items())[:count]):
            picks.append(f"{category} {list(levels)[i % len(levels)]}")
        return picks


def _levels(path: Path, data: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(data, dict) or not data:
        raise SettingsError(f"{path}: expected an object mapping levels to lists of challenges")
    levels: dict[str, tuple[str, ...]] = {}
    for level, items in data.items():
        if not NAME_RE.fullmatch(str(level)):
            raise SettingsError(f"{path}: level {level!r} is not a lower-case word")
        if (
            not isinstance(items, list)
            or not items
            or not all(isinstance(i, str) and i.strip() for i in items)
        ):
            raise SettingsError(f"{path}: level {level!r} needs a non-empty list of texts")
        too_long = [i for i in items if len(i) > MAX_CHALLENGE]
        if too_long:
            raise SettingsError(
                f"{path}: level {level!r} has a challenge over {MAX_CHALLENGE} characters"
            )
        levels[str(level)] = tuple(i.strip() for i in items)
    return levels


def _when(moment: datetime, now: datetime) -> str:
    day = "today" if moment.date() == now.date() else moment.strftime("%a %d %b")
    return f"{day} at {moment.strftime('%H:%M')} UTC"


def make_challenge_bot(
    library: ChallengeLibrary, quota: RollingQuota, *, rng: random.Random | None = None
) -> BotDefinition:
    """The challenge bot over ``library``, with ``quota`` counted requests per window."""
    # Which practice challenge comes next needs no secrecy: the module's generator, not the
    # system's (``SystemRandom`` asks the kernel for every pick, a syscall per webhook).
    pick = rng or random.Random()
    examples = ", ".join(library.examples())
    hours = int(quota.window.total_seconds() // 3600)
    bot = BotBuilder(
        "challenge",
        description="Practice challenges by keyword (python easy, sql hard, ...), "
        f"{quota.limit} per {hours} h.",
        apology=APOLOGY,
        quota=quota,
    )

    lines = ["Send a category and a level to get a challenge:"]
    for category, levels in library.challenges.items():
        lines.append(f"• {category}: {' / '.join(levels)}")
    lines.append(f"For example: {examples}.")
    lines.append(f"You can ask for {quota.limit} challenges every {hours} hours.")
    lines.append("Send mentor to ask a human for help. help shows this again.")
    # The same for everyone and every time: written once.
    help_text = "\n".join(lines)

    @bot.pre("menu")
    def welcome(user: BotUser) -> None:
        user.send("Hi! I send practice challenges in programming, SQL and statistics.")

    @bot.state("menu", next=["menu"])
    def menu(user: BotUser, text: str) -> None:
        words = text.lower().split()
        keyword = " ".join(words)
        if not words or keyword in HELP_WORDS:
            user.record("help", outcome="help")
            user.send(help_text)
            return
        if keyword in HANDOFF_WORDS:
            user.record(keyword, outcome="handoff")
            user.handoff(topic=None, note="asked for a mentor from the challenge bot")
            return
        category, level = _parse(library, words)
        if category is None:
            user.record(keyword, outcome="unknown")
            user.send(
                f"I don't know “{' '.join(text.split())[:60]}”. Try {examples},"
                " or send help for the full list."
            )
            return
        if level is None:
            user.record(category, outcome="unknown")
            options = ", ".join(f"{category} {lvl}" for lvl in library.levels(category))
            user.send(f"Which level? Send one of: {options}.")
            return
        status = user.quota
        assert status is not None
        keyword = f"{category} {level}"
        if not status.allowed:
            assert status.next_available_at is not None
            user.record(keyword, outcome="refused")
            user.send(
                f"You have had your {status.limit} challenges for the last {hours} hours."
                f" Your next one is possible {_when(status.next_available_at, user.now)}."
                " Meanwhile, keep working on the last one!"
            )
            return
        challenge = pick.choice(library.challenges[category][level])
        user.record(keyword, counted=True, outcome="challenge")
        left = status.remaining - 1
        user.send(
            f"{category.capitalize()} · {level}\n\n{challenge}\n\n"
            f"({left} challenge{'s' if left != 1 else ''} left in this {hours} h window)"
        )

    return bot.build()


def _parse(library: ChallengeLibrary, words: list[str]) -> tuple[str | None, str | None]:
    """``sql hard`` or ``hard sql`` -> ("sql", "hard"); ``sql`` -> ("sql", None); else Nones."""
    if len(words) == 1:
        return (words[0], None) if words[0] in library.challenges else (None, None)
    if len(words) != 2:
        return None, None
    for category, level in (words, words[::-1]):
        if level in library.challenges.get(category, {}):
            return category, level
    return None, None
