"""The bots a server knows, by name, and which one answers on which channel (B6).

Bots come from three places: the built-ins, modules named in ``CHATFORGE_BOT_MODULES`` (each
exposes ``bot``, ``bots`` or ``make_bot(settings)``), and the ``chatforge.bots`` entry point
group of installed packages (each entry point is a definition or a ``make_bot(settings)``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any

from chatforge.bots.machine import BotDefinition
from chatforge.errors import NotFound
from chatforge.settings import Settings, SettingsError

ENTRY_POINT_GROUP = "chatforge.bots"


class BotRegistry:
    def __init__(
        self, bots: Iterable[BotDefinition], channel_bots: Mapping[str, str] | None = None
    ) -> None:
        self._bots: dict[str, BotDefinition] = {}
        for bot in bots:
            if bot.name in self._bots:
                raise SettingsError(f"two bots are named {bot.name!r}")
            self._bots[bot.name] = bot
        self._channels = dict(channel_bots or {})
        for channel, name in self._channels.items():
            if name not in self._bots:
                raise SettingsError(
                    f"channel {channel!r} is set to bot {name!r}, which does not exist"
                    f" (known: {', '.join(sorted(self._bots)) or 'none'})"
                )

    @classmethod
    def from_settings(cls, settings: Settings) -> BotRegistry:
        """Built-ins, configured modules and entry points; misconfiguration fails here."""
        from chatforge.bots.builtin import builtin_bots

        bots = [*builtin_bots(settings)]
        for path in filter(None, (p.strip() for p in settings.bot_modules.split(","))):
            try:
                module = importlib.import_module(path)
            except ImportError as exc:
                raise SettingsError(f"bot module {path!r} cannot be imported: {exc}") from exc
            bots += _bots_of(vars(module), settings, where=f"module {path!r}")
        for point in entry_points(group=ENTRY_POINT_GROUP):
            found = point.load()
            bots += _bots_of({"bot": found}, settings, where=f"entry point {point.name!r}")
        return cls(bots, settings.bots_by_channel)

    def all(self) -> list[BotDefinition]:
        return [self._bots[name] for name in sorted(self._bots)]

    def find(self, name: str) -> BotDefinition | None:
        return self._bots.get(name)

    def get(self, name: str) -> BotDefinition:
        """The bot called ``name``; raises ``NotFound``."""
        bot = self._bots.get(name)
        if bot is None:
            raise NotFound(f"No bot named {name!r}.", code="bot_not_found")
        return bot

    def for_channel(self, channel: str) -> BotDefinition | None:
        """The bot enabled on ``channel``, or None when the channel has no bot."""
        name = self._channels.get(channel)
        return self._bots[name] if name else None

    def channels_of(self, name: str) -> list[str]:
        return sorted(c for c, bot in self._channels.items() if bot == name)


def _bots_of(
    namespace: Mapping[str, Any], settings: Settings, *, where: str
) -> list[BotDefinition]:
    found: list[BotDefinition] = []
    single, many, factory = namespace.get("bot"), namespace.get("bots"), namespace.get("make_bot")
    if isinstance(single, BotDefinition):
        found.append(single)
    elif callable(single):
        factory = single
    if many is not None:
        found += list(many)
    if factory is not None:
        made = _call_factory(factory, settings)
        found += [made] if isinstance(made, BotDefinition) else list(made)
    if not found or not all(isinstance(b, BotDefinition) for b in found):
        raise SettingsError(
            f"{where} must provide bot (a BotDefinition), bots (a list of them) or"
            " make_bot(settings)"
        )
    return found


def _call_factory(factory: Callable[..., Any], settings: Settings) -> Any:
    return factory(settings)
