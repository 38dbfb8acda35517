"""The profanity filter (L8): text in, censored text and whether it was needed out.

Pure: no I/O, no state beyond the word list loaded when the filter is built. Strikes and the
automatic mute that follow a violation are the room rules' business (``room_rules.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from better_profanity import Profanity


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

    def screen(self, text: str) -> Screened:
        """Censor ``text``; ``violated`` says whether anything had to be starred out."""
        censored: str = self._profanity.censor(text)
        return Screened(text=censored, violated=censored != text)
