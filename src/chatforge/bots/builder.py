"""Declaring a bot with decorators, the alternative to seed 003's dict format (B1).

::

    bot = BotBuilder("echo", initial="talk")

    @bot.state("talk", next=["talk"])
    def talk(user, text):
        user.send(text)

    @bot.pre("talk")
    def hello(user):
        user.send("Say something and I repeat it.")

    definition = bot.build()   # validated here: unknown states or missing handlers fail
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, TypeVar

from chatforge.bots.machine import (
    DEFAULT_APOLOGY,
    BotDefinition,
    BotDefinitionError,
    Hook,
    MainHandler,
    StateSpec,
)
from chatforge.bots.quota import RollingQuota

F = TypeVar("F", bound=Callable[..., object])


class BotBuilder:
    def __init__(
        self,
        name: str,
        *,
        initial: str | None = None,
        description: str = "",
        apology: str = DEFAULT_APOLOGY,
        quota: RollingQuota | None = None,
    ) -> None:
        self.name = name
        self.initial = initial
        self.description = description
        self.apology = apology
        self.quota = quota
        self._order: list[str] = []
        self._parts: dict[str, dict[str, Any]] = {}

    def _slot(self, state: str) -> dict[str, Any]:
        if state not in self._parts:
            self._parts[state] = {}
            self._order.append(state)
        return self._parts[state]

    def state(
        self,
        name: str,
        *,
        next: Iterable[str] | None = None,
        idle_after: timedelta | float | None = None,
        idle_to: str | None = None,
    ) -> Callable[[F], F]:
        """Register the main handler ``(user, text)`` of state ``name``."""

        def register(handler: F) -> F:
            slot = self._slot(name)
            if "main" in slot:
                raise BotDefinitionError(f"bot {self.name!r}, state {name!r}: defined twice")
            slot["main"] = handler
            slot["next"] = frozenset(next) if next is not None else None
            if idle_after is not None:
                slot["idle_after"] = (
                    idle_after
                    if isinstance(idle_after, timedelta)
                    else timedelta(seconds=idle_after)
                )
            slot["idle_to"] = idle_to
            return handler

        return register

    def _hook(self, kind: str, name: str) -> Callable[[F], F]:
        def register(handler: F) -> F:
            slot = self._slot(name)
            if kind in slot:
                raise BotDefinitionError(f"bot {self.name!r}, state {name!r}: two {kind} handlers")
            slot[kind] = handler
            return handler

        return register

    def enter(self, name: str) -> Callable[[F], F]:
        """Register the handler run every time before input is handled in state ``name``."""
        return self._hook("enter", name)

    def pre(self, name: str) -> Callable[[F], F]:
        """Register the handler run when a user enters state ``name``."""
        return self._hook("pre", name)

    def post(self, name: str) -> Callable[[F], F]:
        """Register the handler run when a user leaves state ``name``."""
        return self._hook("post", name)

    def build(self) -> BotDefinition:
        """The validated definition; raises :class:`BotDefinitionError` naming the bad state."""
        states: dict[str, StateSpec] = {}
        for name in self._order:
            parts = self._parts[name]
            main: MainHandler | None = parts.get("main")
            if main is None:
                raise BotDefinitionError(
                    f"bot {self.name!r}, state {name!r}: the main handler is missing"
                )
            hooks: dict[str, Hook] = {k: parts[k] for k in ("enter", "pre", "post") if k in parts}
            states[name] = StateSpec(
                name=name,
                main=main,
                next=parts.get("next"),
                idle_after=parts.get("idle_after"),
                idle_to=parts.get("idle_to"),
                **hooks,
            )
        if not states:
            raise BotDefinitionError(f"bot {self.name!r}: has no states")
        return BotDefinition(
            name=self.name,
            initial=self.initial or self._order[0],
            states=states,
            description=self.description,
            apology=self.apology,
            quota=self.quota,
        )
