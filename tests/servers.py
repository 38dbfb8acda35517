"""Real servers for the tests: PostgreSQL, Redis and chatforge itself, on 127.0.0.1.

Each starts in a temporary directory and stops when its fixture ends. When a server binary is
missing the test is skipped locally with the reason, and fails under ``CI=true``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
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
import pytest

import chatforge

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(reason: str) -> None:
    """Skip locally, fail in CI: nothing may be skipped there."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: nothing may be skipped)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# -- PostgreSQL -----------------------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


@contextmanager
def postgres_server(base: Path) -> Iterator[str]:
    """A throw-away PostgreSQL cluster; yields an asyncpg URL to an empty database."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        missing("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    assert initdb and pg_ctl
    as_user: list[str] = []
    private_base: Path | None = None
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root; run it as the packaged 'postgres' account, in a
        # directory of its own: pytest's temporary tree is private to root, so that account
        # could not reach a cluster inside ``base``.
        entry = pwd.getpwnam("postgres")
        base = private_base = Path(tempfile.mkdtemp(prefix="chatforge-pg-"))
        (base / "pgdata").mkdir()
        for path in (base, base / "pgdata"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = base / "pgdata"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    try:
        _run([*as_user, initdb, "-D", str(data), "-U", "chatforge", "--auth=trust", "-E", "UTF8"])
        options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
        _run(
            [
                *as_user,
                pg_ctl,
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "-l",
                str(data / "log"),
                "start",
            ]
        )
        try:
            createdb = _pg_bin("createdb") or "createdb"
            _run(
                [
                    *as_user,
                    createdb,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "chatforge",
                    "chatforge",
                ]
            )
            yield f"postgresql+asyncpg://chatforge@127.0.0.1:{port}/chatforge"
        finally:
            subprocess.run(
                [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True
            )
    finally:
        if private_base is not None:
            shutil.rmtree(private_base, ignore_errors=True)


# -- Redis ----------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A redis-server process on 127.0.0.1 that tests may stop, restart, freeze and thaw."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing("redis-server not found: apt-get install redis-server")
        assert binary
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), directory)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.thaw()
        server.stop()


# -- chatforge ------------------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


SECRET = "test-secret-key-that-is-long-enough-0123456789"


# The source tree of the chatforge the tests imported: subprocesses must run that same code, even
# when the environment also holds an install of another checkout.
SOURCE_ROOT = Path(chatforge.__file__).resolve().parent.parent


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a ``python -m chatforge`` subprocess, without inherited CHATFORGE_ values."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHATFORGE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def server_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = child_env()
    env.update(
        CHATFORGE_DATA_DIR=str(data_dir),
        CHATFORGE_SECRET_KEY=SECRET,
        CHATFORGE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        **extra,
    )
    return env


@contextmanager
def chatforge_server(data_dir: Path, **extra_env: str) -> Iterator[LiveServer]:
    """``chatforge serve`` in a subprocess on a free port, migrated, stopped at the end."""
    port = free_port()
    env = server_env(data_dir, port, **extra_env)
    log = data_dir / f"server-{port}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatforge", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", port, env, process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"chatforge exited early:\n{log.read_text()}")
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"chatforge did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
