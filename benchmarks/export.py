"""Dataset export at scale (N4): 1,000,000 messages in 20,000 finished conversations, exported
as OpenAI JSONL through ``GET /api/datasets/export``; reports seconds and the server's peak RSS.

    PYTHONPATH=src python -m benchmarks.export [--conversations 20000] [--per-conversation 50]

The data is written straight into the server's SQLite file (the search-index triggers run as
for any insert). Memory is the server process's VmHWM (peak resident set) before and after the
export: a streamed export keeps it flat however many messages there are.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks.harness import Server, make_accounts, pin_to, running_server
from chatforge.store.models import Role

BODIES = [
    "How do I rebase my branch onto main without losing my changes?",
    "Run git fetch, then git rebase origin/main and resolve any conflicts as they come.",
    "Thanks, and what if I already pushed the branch to the remote?",
    "Then push with --force-with-lease so you do not overwrite someone else's work.",
]


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def generate(db: Path, conversations: int, per_conversation: int) -> None:
    now = datetime.now(UTC).isoformat(sep=" ")
    connection = sqlite3.connect(db)
    try:
        cursor = connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.executemany(
            "INSERT INTO users (id, username, display_name, role, is_active, token_version, "
            "created_at) VALUES (?, ?, ?, ?, 1, 0, ?)",
            [
                (1_000_001, "benchasker", "Asker", "user", now),
                (1_000_002, "benchmod", "Mod", "moderator", now),
            ],
        )
        message_id = 0
        for first in range(1, conversations + 1, 1000):
            ids = range(first, min(first + 1000, conversations + 1))
            cursor.executemany(
                "INSERT INTO conversations (id, kind, status, title, owner_id, assignee_id, "
                "channel, last_seq, created_at, ended_at) "
                "VALUES (?, 'support', 'done', '', 1000001, 1000002, 'web', ?, ?, ?)",
                [(cid, per_conversation, now, now) for cid in ids],
            )
            rows = []
            for cid in ids:
                for seq in range(1, per_conversation + 1):
                    message_id += 1
                    sender = 1_000_001 if seq % 2 else 1_000_002
                    rows.append((message_id, cid, seq, sender, BODIES[seq % len(BODIES)], now))
            cursor.executemany(
                "INSERT INTO messages (id, conversation_id, seq, sender_id, body, created_at, "
                "excluded) VALUES (?, ?, ?, ?, ?, ?, 0)",
                rows,
            )
            connection.commit()
    finally:
        connection.close()


async def export(server: Server, token: str, out: Path) -> tuple[float, int, int]:
    started = time.perf_counter()
    size = lines = 0
    async with (
        httpx.AsyncClient(timeout=None) as client,
        client.stream(
            "GET",
            f"{server.url}/api/datasets/export",
            params={"format": "openai-jsonl"},
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        response.raise_for_status()
        with out.open("wb") as sink:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                lines += chunk.count(b"\n")
                sink.write(chunk)
    return time.perf_counter() - started, size, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=20_000)
    parser.add_argument("--per-conversation", type=int, default=50)
    args = parser.parse_args()
    pin_to(1)
    with running_server() as server:
        started = time.perf_counter()
        generate(server.data_dir / "chatforge.db", args.conversations, args.per_conversation)
        generated = time.perf_counter() - started
        [token] = asyncio.run(make_accounts(server, [Role.annotator]))
        before = peak_rss_kib(server.pid)
        seconds, size, lines = asyncio.run(export(server, token, server.data_dir / "out.jsonl"))
        after = peak_rss_kib(server.pid)
    messages = args.conversations * args.per_conversation
    print(
        f"generated {messages:,} messages in {args.conversations:,} conversations: "
        f"{generated:.1f} s"
    )
    print(f"export openai-jsonl: {seconds:.1f} s, {lines:,} lines, {size / 2**20:.1f} MiB")
    print(f"  {messages / seconds:,.0f} messages/s")
    print(
        f"server peak RSS: {before / 1024:.1f} MiB before the export, {after / 1024:.1f} MiB after"
    )


if __name__ == "__main__":
    main()
