"""The ``chatforge`` command line (R4)."""

from __future__ import annotations

import asyncio
import getpass
import resource
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from chatforge.bots.registry import BotRegistry
from chatforge.channels.console import run_console
from chatforge.context import AppContext, build_context
from chatforge.datasets.formats import ExportFormat
from chatforge.demo import seed_demo
from chatforge.errors import ChatforgeError
from chatforge.realtime.wire import DirectFrameProtocol
from chatforge.services.selection import ConversationSelection
from chatforge.settings import SettingsError, load_settings
from chatforge.store import migrate
from chatforge.store.models import ConversationKind, ConversationStatus, Rating, Role
from chatforge.web.http_protocol import ChatforgeHttpProtocol

app = typer.Typer(help="chatforge: conversations between people and bots.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
user_app = typer.Typer(help="Accounts.", no_args_is_help=True)
bot_app = typer.Typer(help="Bots.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(bot_app, name="bot")

console = Console()
T = TypeVar("T")


def _with_context(work: Callable[[AppContext], Awaitable[T]]) -> T:
    async def run() -> T:
        ctx = build_context(load_settings())
        try:
            return await work(ctx)
        finally:
            await ctx.close()

    return asyncio.run(run())


def _allow_open_files(wanted: int) -> None:
    """Raise this process's open-file limit towards ``wanted`` (each socket is a descriptor).

    Raising the hard limit needs privileges; without them the soft limit goes as high as the
    hard one allows, and connections past it are refused by the kernel, not by chatforge.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def _upgrade() -> None:
    settings = load_settings()
    settings.check()
    migrate.upgrade(settings.resolved_database_url)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    migrate_first: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Upgrade the schema before serving.")
    ] = True,
) -> None:
    """Serve chatforge over HTTP and WebSockets."""
    if workers > 1 and not load_settings().redis_url:
        # Each process would have its own in-memory broker: clients on different processes
        # would not see each other.
        console.print("[red]--workers above 1 needs CHATFORGE_REDIS_URL (and PostgreSQL).[/red]")
        raise typer.Exit(2)
    if migrate_first:
        _upgrade()
    settings = load_settings()
    _allow_open_files(settings.max_connections + 1024)
    console.print(f"chatforge on [bold]http://{host}:{port}[/bold]")
    uvicorn.run(
        "chatforge.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,
        # uvicorn's httptools protocol with one write per answer and request heads capped at
        # 16 KiB (web/http_protocol.py).
        http=ChatforgeHttpProtocol,
        # uvicorn's sans-I/O protocol plus the frame writer the fan-out uses (realtime/wire.py).
        ws=DirectFrameProtocol,
        ws_max_size=64 * 1024,
        ws_per_message_deflate=settings.ws_compression,
        # Slow and abusive clients (docs/security.md): idle keep-alive connections close after
        # 15 s; request heads are capped (above); past CHATFORGE_MAX_CONNECTIONS open
        # connections and requests a process answers 503 at once instead of running out of
        # memory or file descriptors.
        # uvicorn has no timeout for a head that trickles in: the reverse proxy's
        # client_header_timeout is that defence (docs/deployment.md).
        timeout_keep_alive=15,
        limit_concurrency=settings.max_connections,
        backlog=2048,
        log_level="info",
        access_log=settings.access_log,
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema up to date."""
    _upgrade()
    console.print("Database schema is up to date.")


@user_app.command("create")
def user_create(
    username: Annotated[str, typer.Option(help="Login name.")],
    role: Annotated[Role, typer.Option(help="Role of the account.")] = Role.user,
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="Password.")
    ] = "",
) -> None:
    """Create an account, for example the first admin."""
    _upgrade()
    try:
        user = _with_context(lambda ctx: ctx.accounts.register(username, password, role=role))
    except ChatforgeError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"Created {user.username} ({user.role.value}).")


@bot_app.command("list")
def bot_list() -> None:
    """The registered bots and the channels each answers on."""
    registry = BotRegistry.from_settings(load_settings())
    table = Table(title="Bots")
    table.add_column("name")
    table.add_column("channels")
    table.add_column("description")
    for bot in registry.all():
        table.add_row(bot.name, ", ".join(registry.channels_of(bot.name)), bot.description)
    console.print(table)


@bot_app.command("console")
def bot_console(
    name: Annotated[str, typer.Argument(help="The bot to talk to.")],
    as_user: Annotated[
        str, typer.Option("--as", help="Who you are on the console (state is kept per name).")
    ] = "",
) -> None:
    """Talk to a bot in the terminal; state and stored values persist between runs."""
    _upgrade()
    who = as_user or getpass.getuser()
    try:
        _with_context(lambda ctx: run_console(ctx, name, who, console))
    except ChatforgeError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc


def _day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter("dates are written YYYY-MM-DD") from exc


class FinishedStatus(StrEnum):
    done = "done"
    annotated = "annotated"


@app.command("export")
def export(
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="Dataset format.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="File to write (default: standard output).")
    ] = None,
    topic_id: Annotated[int | None, typer.Option(help="Only this topic.")] = None,
    status: Annotated[
        FinishedStatus | None, typer.Option(help="done or annotated (default: both).")
    ] = None,
    kind: Annotated[ConversationKind | None, typer.Option(help="support, session or bot.")] = None,
    channel: Annotated[str | None, typer.Option(help="web, whatsapp, messenger, ...")] = None,
    user_rating: Annotated[Rating | None, typer.Option(help="The user's own rating.")] = None,
    rating: Annotated[Rating | None, typer.Option(help="The annotators' rating.")] = None,
    min_rating: Annotated[
        Rating | None, typer.Option(help="At least this annotators' rating.")
    ] = None,
    ended_from: Annotated[str | None, typer.Option(help="Ended on or after (YYYY-MM-DD).")] = None,
    ended_to: Annotated[str | None, typer.Option(help="Ended on or before (YYYY-MM-DD).")] = None,
    q: Annotated[str | None, typer.Option("--q", help="Words the messages contain.")] = None,
    redact_pii: Annotated[
        bool, typer.Option("--redact-pii", help="Replace email addresses and phone numbers.")
    ] = False,
) -> None:
    """Export finished conversations as a training dataset (streamed, with a progress bar)."""
    _upgrade()
    selection = ConversationSelection(
        topic_id=topic_id,
        status=ConversationStatus(status.value) if status else None,
        kind=kind,
        channel=channel,
        user_rating=user_rating,
        rating=rating,
        min_rating=min_rating,
        ended_from=_day(ended_from),
        ended_to=_day(ended_to),
        q=q,
    )
    progress_console = Console(stderr=True)

    async def work(ctx: AppContext) -> int:
        dataset = await ctx.datasets.export(None, format, selection, redact_pii=redact_pii)
        target = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        try:
            with Progress(*columns, console=progress_console, transient=out is None) as bar:
                task = bar.add_task(f"{format.value}", total=dataset.total)
                async for chunk in dataset.chunks(lambda n: bar.advance(task, n)):
                    target.write(chunk)
        finally:
            if out:
                target.close()
        return dataset.total

    try:
        total = _with_context(work)
    except ChatforgeError as exc:
        progress_console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    if out:
        progress_console.print(f"Exported {total} conversations to {out}.")


@app.command()
def demo() -> None:
    """Load demo topics and one account per role; new passwords are printed once."""
    _upgrade()
    accounts = _with_context(seed_demo)
    table = Table(title="Demo accounts")
    table.add_column("username")
    table.add_column("role")
    table.add_column("password")
    for account in accounts:
        table.add_row(
            account.username,
            account.role.value,
            account.password or "[dim](exists; unchanged)[/dim]",
        )
    console.print(table)
    console.print("Keep these passwords: they are not stored in clear and not shown again.")


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        console.print(f"[red]Configuration error:[/red] {exc}")
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
