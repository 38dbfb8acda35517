"""Signed Twilio WhatsApp webhooks against one chatforge process on SQLite.

Starts ``chatforge serve`` (one worker, a fresh SQLite database in a temporary directory), then
for each concurrency level sends ``--requests`` signed webhooks, each a new MessageSid from one of
``--senders`` WhatsApp numbers asking the challenge bot for a challenge, and reports requests
per second and latency percentiles. Requests are signed before the clock starts: the client's
HMAC work is not the server's.

    python benchmarks/webhook.py --levels 1 4 16 64 --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "benchmark-auth-token"
SID = "AC" + "b" * 32
PATH = "/channels/twilio/whatsapp"
KEYWORDS = ("python easy", "sql medium", "stats hard", "help", "python hard")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def sign(url: str, params: dict[str, str]) -> str:
    data = url + "".join(key + params[key] for key in sorted(params))
    return base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()


def signed_requests(url: str, count: int, senders: int, offset: int) -> list[tuple[bytes, str]]:
    prepared = []
    for i in range(count):
        number = f"+1555{(i % senders):07d}"
        form = {
            "MessageSid": f"SM{offset + i:032x}",
            "AccountSid": SID,
            "From": f"whatsapp:{number}",
            "To": "whatsapp:+14155238886",
            "Body": KEYWORDS[i % len(KEYWORDS)],
            "NumMedia": "0",
            "ProfileName": f"Bench {i % senders}",
        }
        prepared.append((urlencode(form).encode(), sign(url, form)))
    return prepared


async def run_level(
    url: str, prepared: list[tuple[bytes, str]], concurrency: int
) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    queue = iter(prepared)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal errors
            for body, signature in queue:
                started = time.perf_counter()
                try:
                    response = await client.post(
                        url,
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
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies, errors


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATFORGE_")}
    env.update(
        CHATFORGE_DATA_DIR=str(data_dir),
        CHATFORGE_SECRET_KEY="benchmark-secret-key-that-is-long-enough-0123",
        CHATFORGE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        CHATFORGE_TWILIO_ACCOUNT_SID=SID,
        CHATFORGE_TWILIO_AUTH_TOKEN=TOKEN,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")])),
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatforge", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("chatforge did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--requests", type=int, default=1000, help="per concurrency level")
    parser.add_argument("--senders", type=int, default=500, help="distinct WhatsApp numbers")
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "server.log"
        process = start_server(Path(folder), port, log)
        try:
            # Warm-up: creates the accounts of the senders, so every level measures the same path.
            warm = signed_requests(url, args.senders, args.senders, offset=10**9)
            asyncio.run(run_level(url, warm, 8))
            header = ("concurrency", "requests", "req/s", "p50 ms", "p99 ms", "errors")
            print(" ".join(f"{h:>11}" for h in header))
            offset = 0
            for level in args.levels:
                prepared = signed_requests(url, args.requests, args.senders, offset)
                offset += args.requests
                elapsed, latencies, errors = asyncio.run(run_level(url, prepared, level))
                row = (
                    f"{level}",
                    f"{len(latencies)}",
                    f"{len(latencies) / elapsed:.1f}",
                    f"{percentile(latencies, 0.50) * 1000:.1f}",
                    f"{percentile(latencies, 0.99) * 1000:.1f}",
                    f"{errors}",
                )
                print(" ".join(f"{cell:>11}" for cell in row))
        finally:
            process.terminate()
            process.wait(10)
            problems = [line for line in log.read_text().splitlines() if "Error" in line]
            if problems:
                print(f"server log: {len(problems)} error lines, e.g. {problems[-1]}")


if __name__ == "__main__":
    main()
