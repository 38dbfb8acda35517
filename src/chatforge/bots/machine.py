"""The bot state machine (B1): definitions, their validation, and one pure step.

Nothing here does I/O. The runtime loads a user's :class:`Snapshot` (state, stored values, idle
deadline, recent counted requests), :func:`step` runs the bot's handlers against a
:class:`BotUser` that only *records* what they ask for, and the returned :class:`Outcome` is what
the runtime persists and delivers. So a bot is tested with nothing but ``await step(...)``.

A state has up to four handlers (seed 003's names in brackets):

- ``main(user, text)`` [``func``]: handles the user's input; required;
- ``enter(user)`` [``enter_func``]: every time, before input is handled in that state;
- ``pre(user)`` [``pre_func``]: when the user enters the state (``change_state``, first contact);
- ``post(user)`` [``post_func``]: when the user leaves the state.

One inbound message runs: ``pre`` of the initial state on first contact; the idle timeout's
``post``/``pre`` if the deadline passed; then ``enter`` and ``main`` of the current state; then for
each ``change_state`` the handlers asked for, ``post`` of the old and ``pre`` of the new state
(a ``pre`` may move on again, up to :data:`MAX_HOPS`).

If any handler raises, the outcome is an apology and nothing else: state, stored values and
replies already queued are dropped, and the interaction is marked failed and not counted.

Errors::

    BotDefinitionError   a definition is wrong (raised when it is loaded, naming the state)
    BotRuntimeError      a handler asked for something impossible (unknown state, bad value)
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from chatforge.bots.quota import QuotaStatus, RollingQuota

MainHandler = Callable[["BotUser", str], object]
Hook = Callable[["BotUser"], object]
JSONValue = Any

MAX_HOPS: Final = 16
MAX_KEYWORD = 64
MAX_STORED_BYTES = 16 * 1024
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DEFAULT_APOLOGY = "Sorry, something went wrong on our side. Please try again in a moment."


class _Default:
    """Marker for "bind this state's handlers by name" (seed 003's ``Dispatcher.DEFAULT``)."""

    _instance: _Default | None = None

    def __new__(cls) -> _Default:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()


class BotDefinitionError(ValueError):
    """A bot definition cannot be used; the message names the bot and the state."""


class BotRuntimeError(RuntimeError):
    """A handler asked for something the definition does not allow."""


@dataclass(frozen=True, slots=True)
class StateSpec:
    name: str
    main: MainHandler
    enter: Hook | None = None
    pre: Hook | None = None
    post: Hook | None = None
    # The states ``change_state`` may go to from here; None allows any state of the bot.
    next: frozenset[str] | None = None
    idle_after: timedelta | None = None
    idle_to: str | None = None


@dataclass(frozen=True, slots=True)
class BotDefinition:
    name: str
    initial: str
    states: Mapping[str, StateSpec]
    description: str = ""
    apology: str = DEFAULT_APOLOGY
    quota: RollingQuota | None = None

    def __post_init__(self) -> None:
        validate(self)

    def state(self, name: str) -> StateSpec:
        return self.states[name]


def validate(bot: BotDefinition) -> None:
    """Raise :class:`BotDefinitionError` unless every name the definition uses exists."""
    where = f"bot {bot.name!r}"
    if not NAME_RE.fullmatch(bot.name):
        raise BotDefinitionError(f"{where}: a bot name is 1-64 letters, digits, '.', '_' or '-'")
    if not bot.states:
        raise BotDefinitionError(f"{where}: has no states")
    if bot.initial not in bot.states:
        raise BotDefinitionError(f"{where}: initial state {bot.initial!r} is not defined")
    for name, spec in bot.states.items():
        here = f"{where}, state {name!r}"
        if not NAME_RE.fullmatch(name):
            raise BotDefinitionError(f"{here}: a state name is 1-64 letters, digits, '.', '_', '-'")
        if spec.name != name:
            raise BotDefinitionError(f"{here}: registered under another name ({spec.name!r})")
        if not callable(spec.main):
            raise BotDefinitionError(f"{here}: the main handler is missing")
        for slot in ("enter", "pre", "post"):
            hook = getattr(spec, slot)
            if hook is not None and not callable(hook):
                raise BotDefinitionError(f"{here}: the {slot} handler is not callable")
        for target in sorted(spec.next or ()):
            if target not in bot.states:
                raise BotDefinitionError(f"{here}: unknown target state {target!r}")
        if (spec.idle_after is None) != (spec.idle_to is None):
            raise BotDefinitionError(f"{here}: an idle timeout needs both a duration and a state")
        if spec.idle_after is not None and spec.idle_after <= timedelta(0):
            raise BotDefinitionError(f"{here}: the idle timeout must be positive")
        if spec.idle_to is not None and spec.idle_to not in bot.states:
            raise BotDefinitionError(f"{here}: unknown idle timeout target state {spec.idle_to!r}")


# -- loading seed 003's dict format --------------------------------------------------------

_SLOTS = {
    "func": "main",
    "enter_func": "enter",
    "pre_func": "pre",
    "pref_func": "pre",  # seed 003's spelling in its example
    "post_func": "post",
}
_STATE_KEYS = frozenset({*_SLOTS, "next", "timeout"})
_BOT_KEYS = frozenset({"name", "description", "initial", "apology", "quota", "actions"})


def define_bot(
    config: Mapping[str, Any], env: Mapping[str, Any] | None = None, *, name: str | None = None
) -> BotDefinition:
    """Build a bot from a dict in seed 003's format; raise :class:`BotDefinitionError` if wrong.

    ``config["actions"]`` maps each state name to either a dict of handlers (``func``,
    ``enter_func``, ``pre_func``, ``post_func``, plus ``next`` and ``timeout``) or to
    :data:`DEFAULT`, which binds ``func_<state>``, ``enter_func_<state>``, ``pre_func_<state>``
    and ``post_func_<state>`` from ``env`` (usually the module's ``globals()``). Inside a state's
    dict a handler may also be :data:`DEFAULT` or the *name* of a function in ``env``; strings are
    never evaluated as code.
    """
    bot_name = name or str(config.get("name", ""))
    where = f"bot {bot_name!r}"
    unknown = set(config) - _BOT_KEYS
    if unknown:
        raise BotDefinitionError(f"{where}: unknown keys {sorted(unknown)}")
    actions = config.get("actions")
    if not isinstance(actions, Mapping) or not actions:
        raise BotDefinitionError(f"{where}: 'actions' must map state names to handlers")
    bindings = env or {}
    states = {
        str(state): _load_state(where, str(state), entry, bindings)
        for state, entry in actions.items()
    }
    initial = str(config.get("initial") or next(iter(states)))
    quota = _load_quota(where, config.get("quota"))
    return BotDefinition(
        name=bot_name,
        initial=initial,
        states=states,
        description=str(config.get("description", "")),
        apology=str(config.get("apology") or DEFAULT_APOLOGY),
        quota=quota,
    )


def _load_state(where: str, state: str, entry: Any, env: Mapping[str, Any]) -> StateSpec:
    here = f"{where}, state {state!r}"
    if entry is DEFAULT:
        entry = dict.fromkeys(("func", "enter_func", "pre_func", "post_func"), DEFAULT)
        optional = {"enter_func", "pre_func", "post_func"}
    else:
        optional = set()
    if not isinstance(entry, Mapping):
        raise BotDefinitionError(f"{here}: expected a dict of handlers or DEFAULT")
    unknown = set(entry) - _STATE_KEYS
    if unknown:
        raise BotDefinitionError(f"{here}: unknown keys {sorted(unknown)}")
    handlers: dict[str, Any] = {}
    for key, slot in _SLOTS.items():
        if key not in entry:
            continue
        bound = _bind(here, state, key, entry[key], env, required=key not in optional)
        if bound is not None:
            handlers[slot] = bound
    if "main" not in handlers:
        raise BotDefinitionError(f"{here}: the main handler 'func' is missing")
    targets = entry.get("next")
    if targets is not None and (
        isinstance(targets, str) or not all(isinstance(t, str) for t in targets)
    ):
        raise BotDefinitionError(f"{here}: 'next' must be a list of state names")
    idle_after, idle_to = _load_timeout(here, entry.get("timeout"))
    return StateSpec(
        name=state,
        next=frozenset(targets) if targets is not None else None,
        idle_after=idle_after,
        idle_to=idle_to,
        **handlers,
    )


def _bind(
    here: str, state: str, key: str, value: Any, env: Mapping[str, Any], *, required: bool
) -> Callable[..., object] | None:
    if value is DEFAULT:
        # seed 003: "func_help", "pre_func_help", ... (and "pre_func" for seed's "pref_func")
        wanted = f"{'pre_func' if key == 'pref_func' else key}_{state}"
        found = env.get(wanted)
        if found is None:
            if required:
                raise BotDefinitionError(f"{here}: no function {wanted!r} to bind by name")
            return None
        value = found
    elif isinstance(value, str):
        if value.lstrip().startswith("lambda"):
            raise BotDefinitionError(
                f"{here}: {key} is a string of code; give a function or the name of one in env"
            )
        if value not in env:
            raise BotDefinitionError(f"{here}: {key} names {value!r}, which is not in env")
        value = env[value]
    if not callable(value):
        raise BotDefinitionError(f"{here}: {key} is not callable")
    return value  # type: ignore[no-any-return]


def _load_timeout(here: str, value: Any) -> tuple[timedelta | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, Mapping) or set(value) != {"after", "to"}:
        raise BotDefinitionError(f"{here}: 'timeout' is {{'after': seconds, 'to': state}}")
    after = value["after"]
    if isinstance(after, bool) or not isinstance(after, int | float | timedelta):
        raise BotDefinitionError(f"{here}: timeout 'after' must be seconds or a timedelta")
    delta = after if isinstance(after, timedelta) else timedelta(seconds=after)
    return delta, str(value["to"])


def _load_quota(where: str, value: Any) -> RollingQuota | None:
    if value is None or isinstance(value, RollingQuota):
        return value
    if not isinstance(value, Mapping) or set(value) - {"limit", "window_hours"}:
        raise BotDefinitionError(f"{where}: 'quota' is {{'limit': n, 'window_hours': h}}")
    try:
        return RollingQuota(
            int(value["limit"]), timedelta(hours=float(value.get("window_hours", 24)))
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise BotDefinitionError(f"{where}: bad quota: {exc}") from exc


# -- one step --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the machine knows of one user of one bot, as loaded by the runtime."""

    user_id: int
    display_name: str = ""
    channel: str = "console"
    state: str | None = None
    values: Mapping[str, JSONValue] = field(default_factory=dict)
    idle_deadline: datetime | None = None
    # Times of this user's counted requests inside the bot's quota window.
    counted_at: tuple[datetime, ...] = ()


@dataclass(frozen=True, slots=True)
class Interaction:
    """How one inbound message is logged (B3, B5)."""

    keyword: str
    counted: bool = False
    outcome: str = "answered"


@dataclass(frozen=True, slots=True)
class HandoffRequest:
    """A handler asked to pass the user to a human (B4)."""

    topic: str | None
    note: str = ""


@dataclass(slots=True)
class Outcome:
    replies: list[str]
    state: str | None
    values: dict[str, JSONValue]
    idle_deadline: datetime | None
    interaction: Interaction | None
    handoff: HandoffRequest | None = None
    transitions: list[tuple[str | None, str]] = field(default_factory=list)
    error: Exception | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


class BotUser:
    """The user as a handler sees them. Every call only records an intention."""

    def __init__(self, bot: BotDefinition, snapshot: Snapshot, now: datetime) -> None:
        self._bot = bot
        self._snapshot = snapshot
        self.now = now
        self.state: str | None = snapshot.state
        self._values: dict[str, JSONValue] = dict(snapshot.values)
        self._replies: list[str] = []
        self._pending: str | None = None
        self._interaction: Interaction | None = None
        self._handoff: HandoffRequest | None = None

    @property
    def id(self) -> int:
        return self._snapshot.user_id

    @property
    def display_name(self) -> str:
        return self._snapshot.display_name

    @property
    def channel(self) -> str:
        return self._snapshot.channel

    @property
    def bot_name(self) -> str:
        return self._bot.name

    def send(self, text: str) -> None:
        """Queue a reply to the user."""
        if not isinstance(text, str):
            raise BotRuntimeError(f"send() takes text, not {type(text).__name__}")
        if text.strip():
            self._replies.append(text)

    def change_state(self, name: str) -> None:
        """Move to state ``name`` once the current handler returns (``post`` then ``pre`` run)."""
        if name not in self._bot.states:
            raise BotRuntimeError(f"bot {self._bot.name!r} has no state {name!r}")
        current = self._bot.states.get(self.state or "")
        if current is not None and current.next is not None and name not in current.next:
            raise BotRuntimeError(
                f"bot {self._bot.name!r}, state {current.name!r} may not move to {name!r}"
            )
        self._pending = name

    def store(self, name: str, value: JSONValue) -> None:
        """Keep ``value`` (JSON data) for this user and bot; it survives restarts."""
        if not isinstance(name, str) or not name:
            raise BotRuntimeError("stored values need a non-empty name")
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise BotRuntimeError(f"store({name!r}): value is not JSON data") from exc
        self._values[name] = value
        if len(json.dumps(self._values)) > MAX_STORED_BYTES:
            raise BotRuntimeError(f"stored values exceed {MAX_STORED_BYTES} bytes")

    def get(self, name: str, default: JSONValue = None) -> JSONValue:
        return self._values.get(name, default)

    def forget(self, name: str) -> None:
        self._values.pop(name, None)

    def record(self, keyword: str, *, counted: bool = False, outcome: str = "answered") -> None:
        """Describe this interaction for the log: its keyword, whether it counts, its outcome."""
        key = " ".join(keyword.lower().split())[:MAX_KEYWORD]
        self._interaction = Interaction(keyword=key, counted=counted, outcome=outcome[:16])

    @property
    def quota(self) -> QuotaStatus | None:
        """The bot's quota for this user now (None if the bot has none)."""
        if self._bot.quota is None:
            return None
        return self._bot.quota.status(self._snapshot.counted_at, self.now)

    def handoff(self, topic: str | None = None, note: str = "") -> None:
        """Ask to pass the user to a human on ``topic`` (the runtime opens the conversation)."""
        self._handoff = HandoffRequest(topic=topic, note=note[:500])
        if self._interaction is None or self._interaction.outcome == "answered":
            self._interaction = Interaction(
                keyword=self._interaction.keyword if self._interaction else "handoff",
                outcome="handoff",
            )


async def _call(handler: Callable[..., object] | None, *args: Any) -> None:
    if handler is None:
        return
    result = handler(*args)
    if inspect.isawaitable(result):
        await result


async def _follow(bot: BotDefinition, user: BotUser, moves: list[tuple[str | None, str]]) -> None:
    """Apply the pending ``change_state`` and those the entered states' ``pre`` ask for."""
    hops = 0
    while user._pending is not None:
        hops += 1
        if hops > MAX_HOPS:
            raise BotRuntimeError(f"more than {MAX_HOPS} state changes in one step; a loop?")
        target, user._pending = user._pending, None
        old = user.state
        if old is not None:
            await _call(bot.states[old].post, user)
        user.state = target
        moves.append((old, target))
        await _call(bot.states[target].pre, user)


def _default_keyword(text: str) -> str:
    return " ".join(text.lower().split())[:MAX_KEYWORD]


def _deadline(bot: BotDefinition, state: str | None, now: datetime) -> datetime | None:
    spec = bot.states.get(state or "")
    if spec is None or spec.idle_after is None:
        return None
    return now + spec.idle_after


def _failure(bot: BotDefinition, snapshot: Snapshot, text: str | None, exc: Exception) -> Outcome:
    return Outcome(
        replies=[bot.apology],
        state=snapshot.state,
        values=dict(snapshot.values),
        idle_deadline=snapshot.idle_deadline,
        interaction=None
        if text is None
        else Interaction(keyword=_default_keyword(text), counted=False, outcome="error"),
        error=exc,
    )


def _expired(bot: BotDefinition, snapshot: Snapshot, now: datetime) -> str | None:
    """The idle timeout target if the user's deadline has passed, else None."""
    if snapshot.idle_deadline is None or snapshot.idle_deadline > now:
        return None
    spec = bot.states.get(snapshot.state or "")
    return spec.idle_to if spec is not None else None


async def step(bot: BotDefinition, snapshot: Snapshot, text: str, now: datetime) -> Outcome:
    """Handle one inbound ``text``; never raises for a handler's error (see module doc)."""
    user = BotUser(bot, snapshot, now)
    moves: list[tuple[str | None, str]] = []
    try:
        if user.state not in bot.states:
            # First contact, or a state the bot no longer has: start over at the initial state.
            user._pending = bot.initial
            user.state = None
            await _follow(bot, user, moves)
        elif (target := _expired(bot, snapshot, now)) is not None:
            user._pending = target
            await _follow(bot, user, moves)
        assert user.state is not None
        spec = bot.states[user.state]
        await _call(spec.enter, user)
        await _call(spec.main, user, text)
        await _follow(bot, user, moves)
    except Exception as exc:
        return _failure(bot, snapshot, text, exc)
    return Outcome(
        replies=user._replies,
        state=user.state,
        values=user._values,
        idle_deadline=_deadline(bot, user.state, now),
        interaction=user._interaction or Interaction(keyword=_default_keyword(text)),
        handoff=user._handoff,
        transitions=moves,
    )


async def expire(bot: BotDefinition, snapshot: Snapshot, now: datetime) -> Outcome | None:
    """Fire the idle timeout if it is due: ``post``/``pre`` run, no input is handled.

    Returns None when nothing is due. A failing handler leaves the state as it was but clears
    the deadline, so a broken hook does not fire again on every sweep.
    """
    target = _expired(bot, snapshot, now)
    if target is None:
        return None
    user = BotUser(bot, snapshot, now)
    user._pending = target
    moves: list[tuple[str | None, str]] = []
    try:
        await _follow(bot, user, moves)
    except Exception as exc:
        failed = _failure(bot, snapshot, None, exc)
        return replace(failed, replies=[], idle_deadline=None)
    return Outcome(
        replies=user._replies,
        state=user.state,
        values=user._values,
        idle_deadline=_deadline(bot, user.state, now),
        interaction=None,
        handoff=user._handoff,
        transitions=moves,
    )
