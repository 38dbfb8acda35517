"""The profanity filter censors exactly what better-profanity's own word list check does, with
the word index in place of its list (services/profanity.py)."""

from __future__ import annotations

import pytest
from better_profanity import Profanity

from chatforge.services.profanity import ProfanityFilter, WordIndex

LEET = str.maketrans({"a": "@", "i": "1", "o": "0", "e": "3", "s": "$", "t": "7", "l": "1"})


def plain(extra: tuple[str, ...] = ()) -> Profanity:
    profanity = Profanity()
    profanity.load_censor_words()
    if extra:
        profanity.add_censor_words(list(extra))
    return profanity


def corpus(words: list[str]) -> list[str]:
    texts = [
        "",
        "hello 12",
        "Can someone explain how recursion works in python, I am lost on the base case",
        "Assessment of the class: Scunthorpe, shitake mushrooms and a cocktail.",
        "*** --- !!! @@@ 000",
    ]
    for n, word in enumerate(words):
        texts.append(f"so {word} here")
        texts.append(f"{word.upper()}!")
        texts.append(f"({word.translate(LEET)}), ok")
        texts.append(f"x{word} {word}x")
        if n % 3 == 0:
            texts.append(word.replace("a", "*").replace("e", "*") + "?" + word[:-1])
            texts.append(" ".join(word))
    return texts


def listed_words(profanity: Profanity) -> list[str]:
    return sorted(str(word) for word in profanity.CENSOR_WORDSET)


def test_the_filter_censors_exactly_what_the_library_list_does() -> None:
    reference = plain()
    words = listed_words(reference)
    texts = corpus(words[::3])
    screen = ProfanityFilter().screen

    different = [t for t in texts if screen(t).text != reference.censor(t)]

    assert len(texts) > 1000
    assert different == []
    assert sum(screen(t).violated for t in texts) > len(texts) // 2


def test_extra_words_are_indexed_too() -> None:
    extra = ("frobnicate", "gr@ult", "two words")
    reference, screen = plain(extra), ProfanityFilter(extra).screen
    for text in ("you frobnicate", "FR0BN1C4TE it", "gr@ult!", "graULT", "two words here"):
        assert screen(text).text == reference.censor(text), text
    assert screen("you fr0bn1c4t3").violated


@pytest.mark.parametrize(
    "asked",
    # Regular expression syntax in the text or the substitutes ("*", "$", ".") is plain text.
    ["", "a", "sh*t", "sh1t", "$hit", "shit", "bananas", "ab", "s.it", "sh.t", "f*ck", "****"],
)
def test_the_index_answers_in_as_the_list_does(asked: str) -> None:
    reference = plain()
    index = WordIndex(reference.CENSOR_WORDSET, reference.CHARS_MAPPING)
    assert (asked in index) is (asked in reference.CENSOR_WORDSET)
    assert len(index) == len(reference.CENSOR_WORDSET)
    assert list(index) == list(reference.CENSOR_WORDSET)


def test_substitutions_of_other_lengths_fall_back_to_comparing_every_word() -> None:
    reference = plain()
    reference.CHARS_MAPPING = {**reference.CHARS_MAPPING, "u": ("u", "", "oo")}
    reference.load_censor_words()
    index = WordIndex(reference.CENSOR_WORDSET, reference.CHARS_MAPPING)
    for asked in ("fck", "foock", "fuck", "shit", "hello"):
        assert (asked in index) is (asked in reference.CENSOR_WORDSET), asked
