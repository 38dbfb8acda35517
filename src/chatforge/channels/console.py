"""The console channel: talk to a bot in a terminal (``chatforge bot console NAME``).

Seed 003's DevMessenger: what the bot sends is printed. The person at the keyboard is a channel
identity like any other, so their state persists between runs.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from chatforge.channels.base import Channel
from chatforge.channels.identity import normalize, user_for_identity

if TYPE_CHECKING:
    from chatforge.context import AppContext


class ConsoleChannel(Channel):
    name = "console"

    def __init__(self, console: Console | None = None, *, bot_name: str = "bot") -> None:
        self.console = console or Console()
        self.bot_name = bot_name

    async def send(self, external_id: str, text: str) -> None:
        self.console.print(f"[bold cyan]{escape(self.bot_name)}>[/bold cyan] {escape(text)}")


QUIT_WORDS = frozenset({"/quit", "/exit"})


async def run_console(ctx: AppContext, bot_name: str, who: str, console: Console) -> None:
    """Read lines from the terminal and print the bot's answers until EOF or ``/quit``.

    Raises ``NotFound`` for an unknown bot and ``Invalid`` for an unusable console name.
    """
    bot = ctx.bot_runtime.registry.get(bot_name)
    external_id = normalize("console", who)
    channel = ConsoleChannel(console, bot_name=bot.name)
    async with ctx.db.write() as session:
        user = await user_for_identity(session, channel.name, external_id, who)
    console.print(f"Talking to [bold]{escape(bot.name)}[/bold] as {escape(external_id)}.")
    console.print("[dim]/quit or Ctrl-D to leave; your place in the conversation is kept.[/dim]")
    loop = asyncio.get_running_loop()
    while True:
        try:
            # input() blocks, so it runs in a thread and the event loop stays free.
            line = await loop.run_in_executor(None, console.input, "[bold]you>[/bold] ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if line.strip() in QUIT_WORDS:
            return
        reply = await ctx.bot_runtime.converse(bot, user, channel.name, line)
        await channel.send_all(external_id, reply.replies)
