"""Shared set-up for the benchmarks: a chatforge server in its own process, accounts, tokens.

The server runs pinned to CPU 0 (``taskset``) when the machine has two or more cores; the load
generator should run on the other one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from chatforge.context import build_context
from chatforge.settings import load_settings
from chatforge.store import migrate
from chatforge.store.models import Role

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret-key-that-is-long-enough-0123456789"
# chatforge's per-socket flood budget (30 frames/s) would refuse a load generator's publisher;
# the benchmarks that publish over WebSockets lift it.
UNTHROTTLED = {
    "CHATFORGE_WS_FRAMES_PER_SECOND": "100000",
    "CHATFORGE_WS_FRAME_BURST": "100000",
}


@dataclass
class Server:
    url: str
    ws_url: str
    pid: int
    data_dir: Path

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pin_to(cpu: int) -> None:
    """Pin this process (the load generator) to one CPU, if there is more than one."""
    if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


@contextmanager
def running_server(**env: str) -> Iterator[Server]:
    data_dir = Path(tempfile.mkdtemp(prefix="chatforge-bench-"))
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CHATFORGE_")}
    environment.update(
        CHATFORGE_DATA_DIR=str(data_dir),
        CHATFORGE_SECRET_KEY=SECRET,
        CHATFORGE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        **env,
    )
    migrate.upgrade(f"sqlite+aiosqlite:///{data_dir / 'chatforge.db'}")
    command = [sys.executable, "-m", "chatforge", "serve", "--no-migrate", "--port", str(port)]
    if (os.cpu_count() or 1) > 1 and shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server did not start: " + (data_dir / "server.log").read_text())
        # With taskset in front, the server is the child of the taskset process image (exec).
        yield Server(url, f"ws://127.0.0.1:{port}/ws", process.pid, data_dir)
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def pinned_process(name: str, command: list[str], port: int) -> Iterator[int]:
    """Run ``command`` (a server other than chatforge) pinned to CPU 0, with this repository on
    its path, until it listens on ``port``; yields its pid, and stops it afterwards."""
    if (os.cpu_count() or 1) > 1 and shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [environment.get("PYTHONPATH")])]
    )
    log_path = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: {log_path.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"{name} did not start: {log_path.read_text()[-2000:]}")
        # taskset execs the server: the Popen pid is the server's.
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_path.unlink(missing_ok=True)


async def make_accounts(server: Server, roles: list[Role]) -> list[str]:
    """Create one account per role in the server's database; returns their tokens."""
    ctx = build_context(load_settings(data_dir=server.data_dir, secret_key=SECRET))
    try:
        tokens = []
        for n, role in enumerate(roles):
            user = await ctx.accounts.register(f"bench{n}{role.value}", "benchmark-pass", role=role)
            tokens.append(ctx.tokens.issue(user.id, user.token_version))
        return tokens
    finally:
        await ctx.close()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
