"""Bots: declarative state machines (B1), their runtime, registry and the built-in bots."""

from chatforge.bots.builder import BotBuilder
from chatforge.bots.machine import (
    DEFAULT,
    BotDefinition,
    BotDefinitionError,
    BotUser,
    Snapshot,
    StateSpec,
    define_bot,
)

__all__ = [
    "DEFAULT",
    "BotBuilder",
    "BotDefinition",
    "BotDefinitionError",
    "BotUser",
    "Snapshot",
    "StateSpec",
    "define_bot",
]
