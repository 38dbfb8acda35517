"""Redacting personal data from training text: email addresses and phone numbers."""

from __future__ import annotations

import re

EMAIL_MARK, PHONE_MARK = "[email]", "[phone]"

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# A run of digits with the usual separators; counted below so that dates, times, prices and
# short numbers stay (a phone number has 9 to 15 digits, E.164).
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d[\d ().-]{6,}\d(?!\w)")


def _phone(match: re.Match[str]) -> str:
    digits = sum(ch.isdigit() for ch in match.group())
    return PHONE_MARK if 9 <= digits <= 15 else match.group()


def redact(text: str) -> str:
    """``text`` with email addresses and phone numbers replaced by ``[email]`` / ``[phone]``."""
    return _PHONE.sub(_phone, _EMAIL.sub(EMAIL_MARK, text))
