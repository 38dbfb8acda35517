"""The profanity filter (L8): text in, censored text and whether it was needed out.

Pure: no I/O, no state beyond the word list loaded when the filter is built. Strikes and the
automatic mute that follow a violation are the room rules' business (``room_rules.py``).

better-profanity keeps its censor words in a list and asks ``token in words`` for every token
of the text (and every run of tokens that could form one word), so each token is compared with
each of the ~900 words, leetspeak forms and all: 1 ms for "hello 12" and 22 ms for a sentence of
77 characters on the benchmark machine, on the event loop, for every message of a live session.
:class:`WordIndex` answers the same ``in`` from only the words that can match: a word matches
text of one length and starting with one of a few characters (its first letter and that
letter's substitutes), so it is filed under each such (length, first character).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from better_profanity import Profanity
from better_profanity.varying_string import VaryingString


@dataclass(frozen=True, slots=True)
class Screened:
    text: str
    """The text to store and show: every listed word (and its leetspeak forms) starred out."""
    violated: bool


class ProfanityFilter:
    def __init__(self, extra_words: tuple[str, ...] = ()) -> None:
        # Built in the lifespan, not at import: loading the word list takes a moment.
        self._profanity = Profanity()
        self._profanity.load_censor_words()
        if extra_words:
            self._profanity.add_censor_words(list(extra_words))
        self._profanity.CENSOR_WORDSET = WordIndex(
            self._profanity.CENSOR_WORDSET, self._profanity.CHARS_MAPPING
        )

    def screen(self, text: str) -> Screened:
        """Censor ``text``; ``violated`` says whether anything had to be starred out."""
        censored: str = self._profanity.censor(text)
        return Screened(text=censored, violated=censored != text)


class WordIndex:
    """better-profanity's censor words, answering ``text in words`` exactly as its list does
    (a ``VaryingString`` equals each text its character substitutions can spell) without
    comparing the text with words that cannot spell it."""

    def __init__(
        self, words: Sequence[VaryingString], substitutes: dict[str, tuple[str, ...]]
    ) -> None:
        self._words = list(words)
        self._filed: dict[tuple[int, str], list[VaryingString]] = {}
        # Words whose every variant has one known length and first character; any other (a
        # substitution may be empty or longer than one character) is compared with every text.
        self._unfiled: list[VaryingString] = []
        self._matchers: dict[tuple[int, str], re.Pattern[str]] = {}
        if any(len(s) != 1 for subs in substitutes.values() for s in subs):
            self._unfiled = self._words
            return
        for word in self._words:
            text = str(word)
            if not text:
                self._unfiled.append(word)
                continue
            for first in substitutes.get(text[0], (text[0],)):
                self._filed.setdefault((len(text), first), []).append(word)
        # With one character per substitute, a word equals a text of its length exactly when
        # each character of the text is one the word's character may be written as: a regular
        # expression of character classes. One per file, its words as alternatives, so a token
        # costs one match instead of a ``VaryingString.__eq__`` (pure Python) per candidate.
        self._matchers = {
            key: re.compile("|".join(_spellings(str(word), substitutes) for word in words))
            for key, words in self._filed.items()
        }

    def __contains__(self, text: object) -> bool:
        if not isinstance(text, str) or not text:
            return text in self._words
        matcher = self._matchers.get((len(text), text[0]))
        return (matcher is not None and matcher.fullmatch(text) is not None) or any(
            word == text for word in self._unfiled
        )

    def __iter__(self) -> Iterator[VaryingString]:
        return iter(self._words)

    def __len__(self) -> int:
        return len(self._words)


def _spellings(word: str, substitutes: dict[str, tuple[str, ...]]) -> str:
    """A pattern matching every text ``word`` can be written as, one class per character."""
    return "".join(
        "[" + "".join(re.escape(c) for c in substitutes.get(char, (char,))) + "]" for char in word
    )
