"""``benchmarks/peers/webhook_floor.py`` does the job its figures stand for: every POST answered
with TwiML only once its row is stored, in both commit modes. Nothing here is timed."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import httpx
import pytest
from benchmarks.harness import free_port, pinned_process


async def post_all(url: str, bodies: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(
            *(
                client.post(url, content=body, headers={"X-Twilio-Signature": "ignored"})
                for body in bodies
            )
        )


@pytest.mark.parametrize("commit", ["each", "group"])
def test_every_answered_post_is_stored_once(tmp_path: Path, commit: str) -> None:
    port, database = free_port(), tmp_path / "floor.db"
    command = [sys.executable, "-m", "benchmarks.peers.webhook_floor", "--port", str(port)]
    command += ["--db", str(database), "--commit", commit]
    bodies = [f"MessageSid=SM{n:032x}&Body=python+easy" for n in range(40)]
    with pinned_process("floor", command, port):
        answers = asyncio.run(post_all(f"http://127.0.0.1:{port}/channels/twilio/whatsapp", bodies))
        assert [a.status_code for a in answers] == [200] * len(bodies)
        assert {a.text for a in answers} == {'<?xml version="1.0" encoding="UTF-8"?><Response />'}
        assert answers[0].headers["content-type"] == "application/xml"
        # Answered means committed: another connection sees every body already.
        with sqlite3.connect(database) as db:
            stored = sorted(body.decode() for (body,) in db.execute("SELECT body FROM webhooks"))
    assert stored == sorted(bodies)
