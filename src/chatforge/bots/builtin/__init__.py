"""The bots chatforge ships with."""

from __future__ import annotations

from datetime import timedelta

from chatforge.bots.builtin.challenge import ChallengeLibrary, make_challenge_bot
from chatforge.bots.machine import BotDefinition
from chatforge.bots.quota import RollingQuota
from chatforge.settings import Settings


def builtin_bots(settings: Settings) -> list[BotDefinition]:
    library = ChallengeLibrary.load(settings.challenges_dir)
    quota = RollingQuota(settings.challenge_quota, timedelta(hours=settings.challenge_quota_hours))
    return [make_challenge_bot(library, quota)]
