"""Bots for the tests, loaded the way a user's own module is (``CHATFORGE_BOT_MODULES``)."""

from __future__ import annotations

from datetime import timedelta

from chatforge.bots import BotBuilder, BotUser, define_bot


def func_quiz(user: BotUser, text: str) -> None:
    if text == "boom":
        user.store("should_not_stick", True)
        raise ValueError("the quiz handler broke")
    user.store("answers", [*user.get("answers", []), text])
    user.send(f"noted {text} ({len(user.get('answers'))} so far)")


def pre_func_quiz(user: BotUser) -> None:
    user.send("Quiz time. You have 60 seconds per answer.")


def func_lobby(user: BotUser, text: str) -> None:
    if text == "quiz":
        user.change_state("quiz")
    else:
        user.send("Send quiz to start.")


def pre_func_lobby(user: BotUser) -> None:
    user.send("You are in the lobby.")


quiz = define_bot(
    {
        "description": "A quiz with an idle timeout.",
        "actions": {
            "lobby": {"func": "func_lobby", "pre_func": "pre_func_lobby", "next": ["quiz"]},
            "quiz": {
                "func": "func_quiz",
                "pre_func": "pre_func_quiz",
                "timeout": {"after": 60, "to": "lobby"},
            },
        },
    },
    globals(),
    name="quiz",
)

_echo = BotBuilder("echo", description="Repeats what you say.")


@_echo.state("talk")
async def talk(user: BotUser, text: str) -> None:
    if text == "nap":
        user.send("Napping for 3 seconds.")
        user.change_state("nap")
    else:
        user.send(f"echo: {text}")


@_echo.pre("talk")
def awake(user: BotUser) -> None:
    user.send("I am awake.")


@_echo.state("nap", idle_after=timedelta(seconds=3), idle_to="talk")
def nap(user: BotUser, text: str) -> None:
    user.send("zzz")


bots = [quiz, _echo.build()]
