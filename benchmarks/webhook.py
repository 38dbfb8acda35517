"""Signed Twilio WhatsApp webhooks against one chatforge process on SQLite.

Starts ``chatforge serve`` (one worker, a fresh SQLite database, pinned to CPU 0 by the harness),
signs every request before the clock starts (the client's HMAC work is not the server's), and
drives the server with ``wrk`` pinned to CPU 1: a Lua script cycles through the pre-signed
bodies, each a new MessageSid from one of ``--senders`` WhatsApp numbers, with keywords that
take the challenge bot's counted path (``python easy``), its uncounted ``help`` and an unknown
word. A warm-up first sends every sender a ``help``, so the levels measure returning users
(their first contact, which creates the account and the bot conversation, is not measured).

    python benchmarks/webhook.py --levels 16 64 128 --seconds 10

Prints requests per second, p50 / p99 latency and non-200 answers per connection count, then
checks the database: one interaction per answered MessageSid, and nobody over the quota.

Without ``wrk`` on the PATH it falls back to an httpx client in this process (far slower: it
measures the client as much as the server).

``--floor`` then runs the same levels against ``benchmarks/peers/webhook_floor.py`` (POST, one
SQLite insert, reply; with a commit per request and with group commit): what this machine gives
for the job behind the performance reference figures (9,000 and 14,600 requests/s on the
reference machine), so that chatforge's figure can be read against the machine it ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlencode

import httpx

from benchmarks.harness import Server, free_port, percentile, pinned_process, running_server

TOKEN = "benchmark-auth-token"
SID = "AC" + "b" * 32
PATH = "/channels/twilio/whatsapp"
# Counted (challenge), uncounted (help) and unknown: the bot's three main paths.
KEYWORDS = ("python easy", "help", "sql medium", "what is this", "stats hard")
QUOTA = 5

LUA = r"""
-- Cycles through pre-signed webhook bodies, one "signature<TAB>body" per line.
local sigs, bodies, n, i = {}, {}, 0, 0
wrapped = 0  -- global: done() reads it through thread:get
local path = "/channels/twilio/whatsapp"

function setup(thread)
  table.insert(threads, thread)
end
threads = {}

function init(args)
  for line in io.lines(args[1]) do
    local tab = line:find("\t", 1, true)
    n = n + 1
    sigs[n] = line:sub(1, tab - 1)
    bodies[n] = line:sub(tab + 1)
  end
end

function request()
  i = i + 1
  if i > n then i = 1; wrapped = wrapped + 1 end
  return wrk.format("POST", path, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = sigs[i],
  }, bodies[i])
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format("wrapped=%d\n", thread:get("wrapped")))
  end
end
"""


@dataclass
class Result:
    connections: int
    requests: int
    rate: float
    p50_ms: float
    p99_ms: float
    failed: int
    note: str = ""
    # The server's CPU time per request (all its threads), and its share of one CPU while the
    # level ran: on a shared machine these say more than the rate does.
    cpu_us: float = float("nan")
    cpu_share: float = float("nan")


def sign(url: str, params: dict[str, str]) -> str:
    data = url + "".join(key + params[key] for key in sorted(params))
    return base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()


def signed_requests(
    url: str, count: int, senders: range, offset: int, keywords: tuple[str, ...] = KEYWORDS
) -> list[tuple[str, str]]:
    """``count`` (signature, body) pairs with MessageSids from ``offset``, cycling senders."""
    prepared = []
    for i in range(count):
        sender = senders[i % len(senders)]
        form = {
            "MessageSid": f"SM{offset + i:032x}",
            "AccountSid": SID,
            "From": f"whatsapp:+1555{sender:07d}",
            "To": "whatsapp:+14155238886",
            "Body": keywords[(i // len(senders)) % len(keywords)],
            "NumMedia": "0",
            "ProfileName": f"Bench {sender}",
        }
        prepared.append((sign(url, form), urlencode(form)))
    return prepared


def _ms(text: str) -> float:
    value = float(re.sub(r"[a-z]+$", "", text))
    unit = re.sub(r"^[0-9.]+", "", text)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and all its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    server: Server, folder: Path, prepared: list[tuple[str, str]], connections: int, seconds: int
) -> Result:
    bodies = folder / f"bodies-{connections}.tsv"
    bodies.write_text("".join(f"{sig}\t{body}\n" for sig, body in prepared))
    script = folder / "webhook.lua"
    script.write_text(LUA)
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    command += ["-s", str(script), server.url, "--", str(bodies)]
    if (os.cpu_count() or 1) > 1 and shutil.which("taskset"):
        command = ["taskset", "-c", "1", *command]
    cpu_before, started = cpu_seconds(server.pid), time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    cpu = cpu_seconds(server.pid) - cpu_before
    elapsed = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"wrk failed: {run.stderr or run.stdout}")
    out = run.stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    distribution = out[out.index("Latency Distribution") :]
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", distribution, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", distribution, re.M).group(1))  # type: ignore[union-attr]
    failed = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    errors = re.search(r"Socket errors: (.*)", out)
    wrapped = int(m.group(1)) if (m := re.search(r"wrapped=(\d+)", out)) else 0
    note = "; ".join(
        filter(
            None,
            [
                f"socket errors {errors.group(1)}" if errors else "",
                "RAN OUT OF BODIES: later requests were retries" if wrapped else "",
            ],
        )
    )
    return Result(
        connections, total, rate, p50, p99, failed, note, cpu / total * 1e6, cpu / elapsed
    )


async def _httpx_level(server: Server, prepared: list[tuple[str, str]], connections: int) -> Result:
    latencies: list[float] = []
    failed = 0
    queue = iter(prepared)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal failed
            for signature, body in queue:
                started = time.perf_counter()
                try:
                    response = await client.post(
                        PATH,
                        content=body,
                        headers={
                            "Content-Type": "application/x-www-form-urlencoded",
                            "X-Twilio-Signature": signature,
                        },
                    )
                    ok = response.status_code == 200
                except httpx.TransportError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                failed += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return Result(
        connections,
        len(latencies),
        len(latencies) / elapsed,
        percentile(latencies, 0.50) * 1000,
        percentile(latencies, 0.99) * 1000,
        failed,
        "httpx client (wrk not found)",
    )


# The floor's figures on the reference machine (one process, synchronous=NORMAL in WAL).
FLOOR_REFERENCE = {"each": 9_000, "group": 14_600}
ROW_HEADER = ("connections", "requests", "req/s", "p50 ms", "p99 ms", "non-200", "CPU us/req")


def print_row(result: Result, label: str = "") -> None:
    row = (
        f"{result.connections}",
        f"{result.requests}",
        f"{result.rate:.0f}",
        f"{result.p50_ms:.1f}",
        f"{result.p99_ms:.1f}",
        f"{result.failed}",
        f"{result.cpu_us:.0f} ({result.cpu_share:.0%})",
    )
    print(
        " ".join(f"{cell:>11}" for cell in row), "", "; ".join(filter(None, [label, result.note]))
    )


def floor_levels(
    folder: Path, levels: list[int], seconds: int, bodies: list[tuple[str, str]]
) -> dict[str, dict[int, Result]]:
    """The floor server's results per commit mode and level, on ``bodies`` (the signatures are
    sent and ignored)."""
    results: dict[str, dict[int, Result]] = {}
    for commit in FLOOR_REFERENCE:
        port = free_port()
        database = folder / f"floor-{commit}.db"
        command = [sys.executable, "-m", "benchmarks.peers.webhook_floor", "--port", str(port)]
        command += ["--db", str(database), "--commit", commit]
        with pinned_process(f"floor-{commit}", command, port) as pid:
            server = Server(f"http://127.0.0.1:{port}", "", pid, folder)
            # The floor stores every body again when wrk wraps around the list: no note for it.
            results[commit] = {
                c: replace(run_wrk(server, folder, bodies, c, seconds), note="") for c in levels
            }
    return results


def check_database(server: Server) -> str:
    return check_database_file(server.data_dir / "chatforge.db")


def check_database_file(path: Path) -> str:
    """Every stored interaction has its claimed MessageSid, and nobody exceeded the quota."""
    with sqlite3.connect(path, isolation_level=None) as db:
        # One snapshot for every count: the server may still be finishing the last requests.
        db.execute("BEGIN")
        claimed = db.execute("SELECT count(*) FROM inbound_messages").fetchone()[0]
        logged = db.execute("SELECT count(*) FROM bot_interactions").fetchone()[0]
        most = db.execute(
            "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM bot_interactions"
            " WHERE counted GROUP BY user_id)"
        ).fetchone()[0]
    verdict = "ok" if claimed == logged and most <= QUOTA else "MISMATCH"
    return (
        f"database {verdict}: {claimed} MessageSids claimed, {logged} interactions logged,"
        f" at most {most} counted per sender (quota {QUOTA})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[16, 64, 128])
    parser.add_argument("--seconds", type=int, default=10, help="per level (wrk)")
    parser.add_argument("--senders", type=int, default=10_000, help="distinct WhatsApp numbers")
    parser.add_argument(
        "--max-rate", type=int, default=12_000, help="bodies signed per level: rate x seconds"
    )
    parser.add_argument("--requests", type=int, default=2000, help="per level (httpx fallback)")
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="keep uvicorn's access log (off, as behind a reverse proxy that logs requests)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="then the same levels against the floor: POST, one SQLite insert, reply (wrk only)",
    )
    args = parser.parse_args()
    use_wrk = shutil.which("wrk") is not None
    env = {
        "CHATFORGE_TWILIO_ACCOUNT_SID": SID,
        "CHATFORGE_TWILIO_AUTH_TOKEN": TOKEN,
        "CHATFORGE_ACCESS_LOG": str(args.access_log).lower(),
    }

    def level(server: Server, folder: Path, prepared: list[tuple[str, str]], c: int) -> Result:
        if use_wrk:
            return run_wrk(server, folder, prepared, c, args.seconds)
        return asyncio.run(_httpx_level(server, prepared, c))

    with running_server(**env) as server, tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        url = server.url + PATH
        senders = range(args.senders)
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        # First contact of every sender: creates their account, bot state and conversation.
        warm = signed_requests(url, args.senders, senders, 10**12, keywords=("help",))
        started = time.perf_counter()
        first = level(server, folder, warm, 64)
        # wrk stops at its deadline, not at the end of the list: send whatever it left out (a
        # request in flight at the deadline may come again: handled once, answered empty).
        sent = first.requests
        while use_wrk and sent < len(warm):
            sent += level(server, folder, warm[sent:], 64).requests
        # No rate for the warm-up: wrk keeps cycling through the list until its deadline, and
        # once every sender has been seen the repeats are answered as retries (cheap), so its
        # requests per second would mostly count retries.
        print(
            f"warm-up: {args.senders} first contacts in {time.perf_counter() - started:.1f} s"
            + (", then retries until wrk's deadline" if first.note else "")
        )
        print(" ".join(f"{h:>11}" for h in ROW_HEADER), " note")
        offset = 0
        results: dict[int, Result] = {}
        for connections in args.levels:
            count = int(args.max_rate * args.seconds) if use_wrk else args.requests
            prepared = signed_requests(url, count, senders, offset)
            offset += count
            results[connections] = level(server, folder, prepared, connections)
            print_row(results[connections])
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        print(check_database(server))
        log = (server.data_dir / "server.log").read_text(errors="replace").splitlines()
        problems = [line for line in log if "Error" in line or "Traceback" in line]
        if problems:
            print(f"server log: {len(problems)} error lines, e.g. {problems[-1]}")
        if args.floor and use_wrk:
            print_floor(folder, args, prepared, results)


def print_floor(
    folder: Path,
    args: argparse.Namespace,
    bodies: list[tuple[str, str]],
    chatforge: dict[int, Result],
) -> None:
    floor = floor_levels(folder, args.levels, args.seconds, bodies)
    print("floor: POST, one SQLite insert, reply (no signature, no bot), same levels")
    for commit, reference in FLOOR_REFERENCE.items():
        for result in floor[commit].values():
            print_row(result, f"commit {commit}; reference machine {reference:,} req/s")
    best = {commit: max(r.rate for r in rows.values()) for commit, rows in floor.items()}
    ours = max(r.rate for r in chatforge.values())
    for commit, reference in FLOOR_REFERENCE.items():
        scale = best[commit] / reference
        print(
            f"this machine gives {scale:.2f}x the reference's floor with commit {commit}:"
            f" chatforge's best {ours:,.0f} req/s is {ours / best[commit]:.2f} of that floor,"
            f" like {ours / scale:,.0f} req/s on the reference machine"
        )


if __name__ == "__main__":
    main()
