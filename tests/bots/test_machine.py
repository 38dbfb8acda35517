"""The pure state machine: handler order, persistence of intentions, errors, definitions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatforge.bots import DEFAULT, BotBuilder, BotDefinitionError, BotUser, Snapshot, define_bot
from chatforge.bots.machine import BotDefinition, expire, step

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def traced_bot(log: list[str]) -> BotDefinition:
    """Two states that log every handler call; 'go' moves from home to away and back."""
    bot = BotBuilder("traced", initial="home")

    @bot.state("home", next=["away"])
    def home(user: BotUser, text: str) -> None:
        log.append(f"home.main:{text}")
        if text == "go":
            user.change_state("away")

    @bot.enter("home")
    def home_enter(user: BotUser) -> None:
        log.append("home.enter")

    @bot.pre("home")
    def home_pre(user: BotUser) -> None:
        log.append("home.pre")

    @bot.post("home")
    def home_post(user: BotUser) -> None:
        log.append("home.post")

    @bot.state("away")
    async def away(user: BotUser, text: str) -> None:
        await asyncio.sleep(0)
        log.append(f"away.main:{text}")
        user.change_state("home")

    @bot.pre("away")
    async def away_pre(user: BotUser) -> None:
        log.append("away.pre")
        user.send("you are away")

    return bot.build()


async def test_first_contact_enters_the_initial_state_then_handles_input() -> None:
    log: list[str] = []
    outcome = await step(traced_bot(log), Snapshot(user_id=1), "hello", NOW)
    assert log == ["home.pre", "home.enter", "home.main:hello"]
    assert outcome.state == "home"
    assert outcome.transitions == [(None, "home")]


async def test_change_state_runs_post_of_old_and_pre_of_new_after_main() -> None:
    log: list[str] = []
    outcome = await step(traced_bot(log), Snapshot(user_id=1, state="home"), "go", NOW)
    assert log == ["home.enter", "home.main:go", "home.post", "away.pre"]
    assert outcome.state == "away"
    assert outcome.replies == ["you are away"]


async def test_async_handlers_are_awaited() -> None:
    log: list[str] = []
    outcome = await step(traced_bot(log), Snapshot(user_id=1, state="away"), "x", NOW)
    assert log == ["away.main:x", "home.pre"]
    assert outcome.state == "home"


async def test_store_and_get_carry_values_between_steps() -> None:
    bot = BotBuilder("counter")

    @bot.state("count")
    def count(user: BotUser, text: str) -> None:
        seen = user.get("seen", 0) + 1
        user.store("seen", seen)
        user.send(f"message {seen}")

    definition = bot.build()
    first = await step(definition, Snapshot(user_id=7), "a", NOW)
    second = await step(
        definition, Snapshot(user_id=7, state=first.state, values=first.values), "b", NOW
    )
    assert second.replies == ["message 2"]
    assert second.values == {"seen": 2}


async def test_a_failing_handler_answers_with_the_apology_and_changes_nothing() -> None:
    bot = BotBuilder("fragile", apology="Sorry!")

    @bot.state("one")
    def one(user: BotUser, text: str) -> None:
        user.store("touched", True)
        user.send("half an answer")
        user.change_state("two")
        raise RuntimeError("boom")

    @bot.state("two")
    def two(user: BotUser, text: str) -> None:
        user.send("two")

    before = Snapshot(user_id=1, state="one", values={"kept": 1})
    outcome = await step(bot.build(), before, "python easy", NOW)
    assert outcome.replies == ["Sorry!"]
    assert outcome.state == "one"
    assert outcome.values == {"kept": 1}
    assert isinstance(outcome.error, RuntimeError)
    assert outcome.interaction is not None
    assert outcome.interaction.outcome == "error"
    assert outcome.interaction.counted is False


async def test_changing_to_an_undeclared_or_unknown_state_is_a_handler_error() -> None:
    log: list[str] = []
    bot = traced_bot(log)
    definition = BotDefinition(
        name=bot.name,
        initial=bot.initial,
        states={
            **bot.states,
            "stuck": bot.states["home"].__class__(
                name="stuck", main=lambda u, t: u.change_state("nowhere")
            ),
        },
    )
    outcome = await step(definition, Snapshot(user_id=1, state="stuck"), "x", NOW)
    assert outcome.failed and "nowhere" in str(outcome.error)
    # 'home' declares next=['away'] only.
    bad = await step(
        define_bot(
            {
                "actions": {
                    "home": {"func": lambda u, t: u.change_state("home"), "next": ["away"]},
                    "away": {"func": lambda u, t: None},
                }
            },
            name="strict",
        ),
        Snapshot(user_id=1, state="home"),
        "x",
        NOW,
    )
    assert bad.failed and "may not move" in str(bad.error)


async def test_state_loops_are_cut_off() -> None:
    bot = BotBuilder("loop")

    @bot.state("a")
    def a(user: BotUser, text: str) -> None:
        user.change_state("b")

    @bot.state("b")
    def b(user: BotUser, text: str) -> None:
        pass

    @bot.pre("b")
    def b_pre(user: BotUser) -> None:
        user.change_state("a")

    @bot.pre("a")
    def a_pre(user: BotUser) -> None:
        user.change_state("b")

    outcome = await step(bot.build(), Snapshot(user_id=1, state="a"), "x", NOW)
    assert outcome.failed and "loop" in str(outcome.error)
    assert outcome.state == "a"


async def test_stored_values_must_be_json() -> None:
    bot = BotBuilder("store")

    @bot.state("s")
    def s(user: BotUser, text: str) -> None:
        user.store("when", NOW)

    outcome = await step(bot.build(), Snapshot(user_id=1, state="s"), "x", NOW)
    assert outcome.failed and "JSON" in str(outcome.error)


# -- idle timeouts (B7) ------------------------------------------------------------------------


def sleepy_bot() -> BotDefinition:
    bot = BotBuilder("sleepy", initial="quiz")

    @bot.state("quiz", idle_after=timedelta(minutes=5), idle_to="lobby")
    def quiz(user: BotUser, text: str) -> None:
        user.send(f"answer noted: {text}")

    @bot.state("lobby")
    def lobby(user: BotUser, text: str) -> None:
        user.send(f"lobby got: {text}")

    @bot.pre("lobby")
    def lobby_pre(user: BotUser) -> None:
        user.send("Time is up, back to the lobby.")

    return bot.build()


async def test_each_message_resets_the_idle_deadline_of_the_state() -> None:
    outcome = await step(sleepy_bot(), Snapshot(user_id=1), "42", NOW)
    assert outcome.state == "quiz"
    assert outcome.idle_deadline == NOW + timedelta(minutes=5)


async def test_expire_moves_to_the_timeout_state_only_when_due() -> None:
    bot = sleepy_bot()
    waiting = Snapshot(user_id=1, state="quiz", idle_deadline=NOW + timedelta(minutes=5))
    assert await expire(bot, waiting, NOW + timedelta(minutes=4)) is None
    fired = await expire(bot, waiting, NOW + timedelta(minutes=5))
    assert fired is not None
    assert fired.state == "lobby"
    assert fired.replies == ["Time is up, back to the lobby."]
    assert fired.idle_deadline is None
    assert fired.interaction is None


async def test_a_message_after_the_deadline_is_handled_in_the_timeout_state() -> None:
    late = Snapshot(user_id=1, state="quiz", idle_deadline=NOW - timedelta(seconds=1))
    outcome = await step(sleepy_bot(), late, "hello?", NOW)
    assert outcome.state == "lobby"
    assert outcome.replies == ["Time is up, back to the lobby.", "lobby got: hello?"]


# -- definitions -------------------------------------------------------------------------------


def func_help(user: BotUser, text: str) -> None:
    user.send("help text")


def pre_func_help(user: BotUser) -> None:
    user.send("entering help")


def show_menu(user: BotUser, text: str) -> None:
    user.change_state("help")


async def test_dict_definition_binds_by_name_like_seed_003() -> None:
    config: dict[str, Any] = {
        "actions": {
            "welcome": {
                "pref_func": lambda user: user.send("Hi there"),
                "func": "show_menu",
                "next": ["help"],
            },
            "help": DEFAULT,
        }
    }
    bot = define_bot(config, globals(), name="seeded")
    assert bot.initial == "welcome"
    assert bot.states["help"].pre is pre_func_help
    outcome = await step(bot, Snapshot(user_id=1), "menu", NOW)
    assert outcome.replies == ["Hi there", "entering help"]
    assert outcome.state == "help"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"actions": {"a": {"func": func_help, "next": ["b"]}}},
            "state 'a': unknown target state 'b'",
        ),
        (
            {"actions": {"a": {"pre_func": pre_func_help}}},
            "state 'a': the main handler 'func' is missing",
        ),
        ({"actions": {"menu": DEFAULT}}, "state 'menu': no function 'func_menu'"),
        ({"actions": {"a": {"func": "lambda u, t: None"}}}, "state 'a': func is a string of code"),
        ({"actions": {"a": {"func": "nope"}}}, "state 'a': func names 'nope'"),
        ({"actions": {"a": {"func": func_help, "fucn": 1}}}, "state 'a': unknown keys ['fucn']"),
        (
            {"actions": {"a": {"func": func_help, "timeout": {"after": 5, "to": "zz"}}}},
            "state 'a': unknown idle timeout target state 'zz'",
        ),
        ({"initial": "x", "actions": {"a": {"func": func_help}}}, "initial state 'x'"),
        ({"actions": {}}, "'actions' must map"),
    ],
)
def test_bad_dict_definitions_fail_at_load_naming_the_state(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(BotDefinitionError) as error:
        define_bot(config, globals(), name="bad")
    assert message in str(error.value)
    assert "bot 'bad'" in str(error.value)


def test_decorator_definition_with_only_hooks_fails_naming_the_state() -> None:
    bot = BotBuilder("hooks", initial="a")

    @bot.state("a", next=["b"])
    def a(user: BotUser, text: str) -> None:
        pass

    @bot.pre("b")
    def b_pre(user: BotUser) -> None:
        pass

    with pytest.raises(BotDefinitionError, match="state 'b': the main handler is missing"):
        bot.build()


def test_decorator_definition_rejects_unknown_targets() -> None:
    bot = BotBuilder("targets")

    @bot.state("a", next=["ghost"])
    def a(user: BotUser, text: str) -> None:
        pass

    with pytest.raises(BotDefinitionError, match="state 'a': unknown target state 'ghost'"):
        bot.build()
