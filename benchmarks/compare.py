"""chatforge against peer Python WebSocket servers, doing the same job.

    python -m benchmarks.compare [--servers chatforge,starlette,...] [--sizes 500,2000] [--quick]

One room, JSON messages of the same size (about 256 bytes of payload) broadcast to N
subscribers. Every server runs in its own process pinned to CPU 0; this process is the load
generator (``benchmarks/loadgen.py``), pinned to CPU 1. For each server:

* saturation: subscriber deliveries per second at each size, the publisher sending as fast as
  deliveries keep up (at most ``--window`` messages' deliveries outstanding);
* latency: p50 / p99 from send to receipt on probe sockets, open loop at 25 %, 50 % and 75 % of
  that server's own saturation;
* memory per idle socket (server RSS growth over ``--idle`` sockets), with the client offering
  permessage-deflate and without;
* handshakes per second: connects until the first server frame, 50 in flight, each closed after.

chatforge stores every message (SQLite) before it broadcasts it; the peers store nothing. The
peers (``benchmarks/peers/``): a hand-written asyncio relay that builds one frame per message
(the practical limit of Python on the machine), bare Starlette, the ``websockets`` library,
python-socketio and Flask-SocketIO.
The results go to a table and to ``benchmarks/results/last-run.json``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import uvloop
from rich.console import Console
from rich.table import Table

from benchmarks.harness import (
    ROOT,
    UNTHROTTLED,
    Server,
    free_port,
    make_accounts,
    pin_to,
    pinned_process,
    running_server,
)
from benchmarks.loadgen import (
    CpuMeter,
    Fanout,
    FanoutFailed,
    SetupError,
    Target,
    WSClient,
    handshakes,
    idle_memory,
)
from chatforge.store.models import Role

RESULTS = ROOT / "benchmarks" / "results" / "last-run.json"
SERVERS = ("chatforge", "asyncio", "starlette", "websockets", "socketio", "flask-socketio")
SOCKETIO_PATH = "/socket.io/?EIO=4&transport=websocket"
UVICORN = [
    "-m",
    "uvicorn",
    "--host",
    "127.0.0.1",
    "--ws",
    "websockets-sansio",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--log-level",
    "warning",
]
PEER_COMMANDS: dict[str, Callable[[int], list[str]]] = {
    "starlette": lambda port: [
        *UVICORN,
        "--port",
        str(port),
        "benchmarks.peers.starlette_peer:app",
    ],
    "websockets": lambda port: ["-m", "benchmarks.peers.websockets_peer", "--port", str(port)],
    "asyncio": lambda port: ["-m", "benchmarks.peers.asyncio_peer", "--port", str(port)],
    "socketio": lambda port: [*UVICORN, "--port", str(port), "benchmarks.peers.socketio_peer:app"],
    "flask-socketio": lambda port: [
        "-m",
        "benchmarks.peers.flask_socketio_peer",
        "--port",
        str(port),
    ],
}
PEER_DIALECTS = {
    "starlette": ("plain", "/ws"),
    "websockets": ("plain", "/"),
    "asyncio": ("plain", "/"),
    "socketio": ("socketio", SOCKETIO_PATH),
    "flask-socketio": ("socketio", SOCKETIO_PATH),
}
CHAT_MARKER = b'"type":"chat_message"'
SOCKETIO_MARKER = b'42["msg"'
PAD = "x" * 65536
# The peers broadcast a frame shaped like the one chatforge sends for a chat message.
PEER_FRAME = (
    '{"type":"chat_message","conversation_id":1,"seq":%d,"actor_id":1,'
    '"created_at":"2026-01-01T12:00:00.000000Z","message_id":%d,"sender_id":1,'
    '"sender_name":"bench0user","body":"t=%d %s","client_id":"m%d",'
    '"recipient_id":null,"reply_to":null}'
)
PACKAGES = (
    "uvicorn",
    "uvloop",
    "httptools",
    "websockets",
    "starlette",
    "fastapi",
    "SQLAlchemy",
    "aiosqlite",
    "python-socketio",
    "python-engineio",
    "Flask",
    "Flask-SocketIO",
    "gevent",
    "gevent-websocket",
)

console = Console(stderr=True, highlight=False)


@dataclass
class Config:
    sizes: list[int]
    warmup: float = 1.5
    saturation: float = 4.0
    latency: float = 4.0
    latency_max: float = 10.0
    latency_messages: int = 40
    fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    window: int = 32
    probes: int = 32
    frame_bytes: int = 256
    idle: int = 2000
    handshakes: int = 2000
    handshake_concurrency: int = 50
    # Before each server starts, wait this long at most for other processes to calm down.
    quiet_wait: float = 5.0
    # A fan-out or handshake measurement during which other processes used more than
    # noise_limit % of a core is taken again, at most `retries` times, until `deadline`.
    noise_limit: float = 30.0
    retries: int = 2
    budget: float = 600.0
    deadline: float = float("inf")


@dataclass
class Launched:
    name: str
    pid: int
    port: int
    make_target: Callable[[], Awaitable[Target]]

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")


# -- the contenders -------------------------------------------------------------------------


def peer_message(seq: int, t_ns: int, pad: int) -> bytes:
    return (PEER_FRAME % (seq, seq, t_ns, PAD[:pad], seq)).encode()


def socketio_message(seq: int, t_ns: int, pad: int) -> bytes:
    return b'42["msg",' + peer_message(seq, t_ns, pad) + b"]"


def peer_target(name: str, port: int) -> Target:
    dialect, path = PEER_DIALECTS[name]
    socketio = dialect == "socketio"
    return Target(
        name=name,
        host="127.0.0.1",
        port=port,
        dialect=dialect,
        sub_path=path,
        pub_path=path,
        marker=SOCKETIO_MARKER if socketio else CHAT_MARKER,
        message=socketio_message if socketio else peer_message,
        pad=1,
    )


async def expect(client: WSClient, marker: bytes, within: float = 60.0) -> bytes:
    """The next chatforge frame carrying ``marker``; an error frame stops the set-up."""
    deadline = time.monotonic() + within
    while True:
        frame = await client.recv(max(0.001, deadline - time.monotonic()))
        if marker in frame[:64]:
            return frame
        if b'"type":"error"' in frame[:64]:
            raise SetupError(frame[:300].decode(errors="replace"))


async def chatforge_target(server: Server, port: int) -> Target:
    """Accounts, a topic and a claimed conversation, as in ``benchmarks/fanout.py``."""
    owner, moderator, admin = await make_accounts(server, [Role.user, Role.moderator, Role.admin])
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

        async def post(path: str, token: str, body: dict[str, Any] | None = None) -> Any:
            response = await http.post(
                path, json=body, headers={"Authorization": f"Bearer {token}"}
            )
            if response.status_code >= 300:
                raise SetupError(f"POST {path}: HTTP {response.status_code} {response.text[:200]}")
            return response.json()

        topic = await post("/api/topics", admin, {"name": "bench"})
        conversation = await post("/api/conversations", owner, {"topic_id": topic["id"]})
        conversation_id = conversation["id"]
        await post(f"/api/conversations/{conversation_id}/claim", moderator)

    subscribe_frame = json.dumps(
        {"type": "subscribe", "conversation_id": conversation_id, "after_seq": 0}
    ).encode()
    # %-formatting: the cheapest way to build a message on the generator's hot path.
    template = (
        '{"type":"chat_message","conversation_id":%d,"body":"t=%%d %%s","client_id":"m%%d"}'  # noqa: UP031
        % conversation_id
    )

    def message(seq: int, t_ns: int, pad: int) -> bytes:
        return (template % (t_ns, PAD[:pad], seq)).encode()

    async def ready(client: WSClient) -> None:
        await expect(client, b'"type":"hello"')

    async def subscribe(client: WSClient) -> None:
        client.send(subscribe_frame)
        await expect(client, b'"type":"subscribed"')

    return Target(
        name="chatforge",
        host="127.0.0.1",
        port=port,
        dialect="plain",
        sub_path=f"/ws?token={moderator}",
        pub_path=f"/ws?token={owner}",
        idle_path=f"/ws?token={owner}",
        marker=CHAT_MARKER,
        message=message,
        ready=ready,
        subscribe=subscribe,
        pad=1,
    )


@contextmanager
def peer_process(name: str) -> Iterator[Launched]:
    port = free_port()
    with pinned_process(name, [sys.executable, *PEER_COMMANDS[name](port)], port) as pid:
        yield Launched(name, pid, port, lambda: _ready(peer_target(name, port)))


async def _ready(target: Target) -> Target:
    return target


def wait_for_quiet(limit: float, threshold: float = 30.0) -> float:
    """Wait up to ``limit`` seconds for the rest of the machine to use under ``threshold`` % of
    one core (other people's work on a shared machine); returns the last share seen."""
    meter = CpuMeter(None)
    deadline = time.monotonic() + limit
    while True:
        first = meter.snapshot()
        time.sleep(1.0)
        others = CpuMeter.percent(first, meter.snapshot())["other_cpu_pct"]
        if others < threshold or time.monotonic() >= deadline:
            if others >= threshold:
                console.print(f"  [yellow]the machine is busy: other processes {others:.0f} %[/]")
            return others


@contextmanager
def launch(name: str, quiet_wait: float) -> Iterator[Launched]:
    wait_for_quiet(quiet_wait)
    if name == "chatforge":
        with running_server(**UNTHROTTLED) as server:
            port = int(server.url.rsplit(":", 1)[1])
            yield Launched(name, server.pid, port, lambda: chatforge_target(server, port))
    else:
        with peer_process(name) as launched:
            yield launched


# -- the measurements ------------------------------------------------------------------------


async def fanout_phases(launched: Launched, size: int, config: Config) -> dict[str, Any]:
    target = await launched.make_target()
    meter = CpuMeter(launched.pid)
    result: dict[str, Any] = {"subscribers": size}
    async with Fanout(target, size, probes=config.probes) as fanout:
        result["frame_bytes"] = await fanout.calibrate(config.frame_bytes)
        result["pad_bytes"] = target.pad
        result["sample_frame"] = fanout.stats.sample.decode(errors="replace")
        saturation = await fanout.saturate(
            window=config.window, warmup=config.warmup, seconds=config.saturation, meter=meter
        )
        result["saturation"] = saturation
        if "error" in saturation:
            result["error"] = saturation["error"]
            return result
        result["latency"] = {}
        for fraction in config.fractions:
            rate = fraction * saturation["deliveries_per_s"] / size
            seconds = max(config.latency, min(config.latency_max, config.latency_messages / rate))
            result["latency"][f"{round(fraction * 100)}%"] = await fanout.open_loop(
                rate=rate, seconds=seconds, meter=meter
            )
    return result


async def memory_phase(launched: Launched, count: int, deflate: bool) -> dict[str, Any]:
    target = await launched.make_target()
    return await idle_memory(target, count, deflate=deflate, rss_kib=launched.rss_kib)


async def handshake_phase(launched: Launched, config: Config) -> dict[str, Any]:
    target = await launched.make_target()
    meter = CpuMeter(launched.pid)
    first = meter.snapshot()
    result = await handshakes(target, config.handshakes, concurrency=config.handshake_concurrency)
    return {**result, **CpuMeter.percent(first, meter.snapshot())}


def guarded(label: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one measurement; a failure becomes an ``error`` entry instead of ending the run."""
    try:
        return run()
    except FanoutFailed as exc:
        console.print(f"  [red]{label}: {exc}[/red]")
        return {"error": str(exc)}
    except Exception as exc:
        console.print(f"  [red]{label}: {type(exc).__name__}: {exc}[/red]")
        console.print(traceback.format_exc(), style="dim", markup=False)
        return {"error": f"{type(exc).__name__}: {exc}"}


def noise(entry: Any) -> float:
    """The most CPU that other processes used during any phase of a measurement."""
    if isinstance(entry, dict):
        found = [noise(value) for value in entry.values()]
        if "other_cpu_pct" in entry:
            found.append(float(entry["other_cpu_pct"]))
        return max(found, default=0.0)
    return 0.0


def best_of(label: str, run: Callable[[], dict[str, Any]], config: Config) -> dict[str, Any]:
    """Measure again (at most ``config.retries`` times, within the run's time budget) while
    other processes took more than ``config.noise_limit`` % of a core; keep the quietest."""
    best: dict[str, Any] | None = None
    for attempt in range(1, config.retries + 2):
        entry = guarded(label, run)
        entry["attempt"] = attempt
        if best is None or ("error" not in entry and noise(entry) < noise(best)):
            best = entry
        if (
            "error" in entry
            or noise(entry) <= config.noise_limit
            or attempt > config.retries
            or time.monotonic() > config.deadline
        ):
            break
        console.print(
            f"  [yellow]other processes used up to {noise(entry):.0f} % of a core meanwhile:"
            " measuring again[/yellow]"
        )
    assert best is not None
    return best


def measure_server(name: str, config: Config, parts: set[str]) -> dict[str, Any]:
    result: dict[str, Any] = {"fanout": {}, "memory": {}}
    if "fanout" in parts:
        for size in config.sizes:

            def fanout(size: int = size) -> dict[str, Any]:
                with launch(name, config.quiet_wait) as launched:
                    return uvloop.run(fanout_phases(launched, size, config))

            console.print(f"[bold]{name}[/bold]: fan-out to {size} subscribers")
            entry = best_of(f"{name} {size}", fanout, config)
            result["fanout"][str(size)] = entry
            if "saturation" in entry and "deliveries_per_s" in entry["saturation"]:
                sat = entry["saturation"]
                console.print(
                    f"  {sat['deliveries_per_s']:,.0f} deliveries/s"
                    f" ({sat['messages_per_s']:,.1f} msg/s; CPU generator"
                    f" {sat['generator_cpu_pct']:.0f} %, server {sat['server_cpu_pct']:.0f} %,"
                    f" other processes {sat['other_cpu_pct']:.0f} %,"
                    f" irq {sat['irq_cpu_pct']:.0f} %; {sat['frames_per_read']:.2f} frames per"
                    f" read, {sat['generator_unread_kib']:.0f} KiB unread by the generator;"
                    f" frame {entry['frame_bytes']} B)"
                )
                if entry["attempt"] > 1:
                    console.print(f"  (attempt {entry['attempt']}: the quietest)")
                for label, lat in entry.get("latency", {}).items():
                    console.print(
                        f"  at {label}: p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms"
                        f" ({lat['samples']} samples, {lat['missing']} missing)"
                    )
    if "memory" in parts:
        for deflate in (False, True):
            key = "deflate" if deflate else "plain"

            def memory(deflate: bool = deflate) -> dict[str, Any]:
                with launch(name, config.quiet_wait) as launched:
                    return uvloop.run(memory_phase(launched, config.idle, deflate))

            console.print(f"[bold]{name}[/bold]: {config.idle} idle sockets ({key})")
            entry = guarded(f"{name} memory {key}", memory)
            result["memory"][key] = entry
            if "kib_per_socket" in entry:
                console.print(
                    f"  {entry['kib_per_socket']:.1f} KiB per socket"
                    f" (deflate accepted on {entry['deflate_accepted']})"
                )
            if entry.get("error"):
                console.print(f"  [red]{entry['error']}[/red]")
    if "handshakes" in parts:

        def handshake() -> dict[str, Any]:
            with launch(name, config.quiet_wait) as launched:
                return uvloop.run(handshake_phase(launched, config))

        console.print(f"[bold]{name}[/bold]: {config.handshakes} handshakes")
        entry = best_of(f"{name} handshakes", handshake, config)
        result["handshakes"] = entry
        if "handshakes_per_s" in entry:
            console.print(f"  {entry['handshakes_per_s']:,.0f} handshakes/s")
        if entry.get("error"):
            console.print(f"  [red]{entry['error']}[/red]")
    return result


# -- the report ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "chatforge_commit": commit,
    }


def dig(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def number(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:,.{digits}f}"


def ratio(mine: Any, theirs: Any) -> str:
    if not mine or not theirs or mine != mine or theirs != theirs:
        return "-"
    return f"{mine / theirs:.2f}x"


def report(results: dict[str, Any], config: Config) -> None:
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    servers: dict[str, Any] = results["servers"]
    sizes = [str(size) for size in config.sizes]

    throughput_columns: list[tuple[str, Callable[[dict[str, Any]], Any], int]] = []
    for size in sizes:
        throughput_columns.append(
            (
                f"deliv./s\n{size} subs",
                lambda r, s=size: dig(r, "fanout", s, "saturation", "deliveries_per_s"),
                0,
            )
        )
    throughput_columns += [
        (
            "KiB/socket\nidle",
            lambda r: dig(r, "memory", "plain", "kib_per_socket"),
            1,
        ),
        (
            "KiB/socket\ndeflate\noffered",
            lambda r: dig(r, "memory", "deflate", "kib_per_socket"),
            1,
        ),
        ("hand-\nshakes/s", lambda r: dig(r, "handshakes", "handshakes_per_s"), 0),
    ]
    table = Table(title="Fan-out of one room: throughput, memory, handshakes")
    table.add_column("server")
    for title, _, _ in throughput_columns:
        table.add_column(title, justify="right")
    for size in sizes:
        table.add_column(f"CPU % sat.\n{size} subs\ngen/srv/oth", justify="right")
    table.add_column("frame\nbytes", justify="right")
    for name, data in servers.items():
        row = [name]
        for title, get, digits in throughput_columns:
            value = get(data)
            cell = number(value, digits)
            if "deflate" in title and dig(data, "memory", "deflate", "deflate_accepted") == 0:
                cell += " (n/a)"
            row.append(cell)
        for size in sizes:
            sat = dig(data, "fanout", size, "saturation") or {}
            if "generator_cpu_pct" in sat:
                row.append(
                    f"{sat['generator_cpu_pct']:.0f}/{sat['server_cpu_pct']:.0f}"
                    f"/{sat['other_cpu_pct']:.0f}"
                )
            else:
                row.append("FAILED" if dig(data, "fanout", size, "error") else "-")
        frames = {dig(data, "fanout", s, "frame_bytes") for s in sizes} - {None}
        row.append("/".join(str(f) for f in sorted(frames)) or "-")
        table.add_row(*row)
    mine = servers.get("chatforge")
    if mine:
        for name, data in servers.items():
            if name == "chatforge":
                continue
            row = [f"[dim]chatforge / {name}[/dim]"]
            for _, get, _digits in throughput_columns:
                row.append(f"[dim]{ratio(get(mine), get(data))}[/dim]")
            row += [""] * (len(sizes) + 1)
            table.add_row(*row)
    out.print(table)

    latency = Table(
        title="Latency, send to receipt (ms): p50 / p99, open loop at a share of "
        "each server's own saturation"
    )
    latency.add_column("server")
    keys = [(size, f"{round(f * 100)}%") for size in sizes for f in config.fractions]
    for size, share in keys:
        latency.add_column(f"{size} subs\nat {share}", justify="right")

    def pair(data: dict[str, Any], size: str, share: str) -> tuple[Any, Any]:
        entry = dig(data, "fanout", size, "latency", share) or {}
        return entry.get("p50_ms"), entry.get("p99_ms")

    for name, data in servers.items():
        row = [name]
        for size, share in keys:
            p50, p99 = pair(data, size, share)
            if p50 is None:
                row.append("FAILED" if dig(data, "fanout", size, "error") else "-")
            else:
                row.append(f"{number(p50, 1)} / {number(p99, 1)}")
        latency.add_row(*row)
    if mine:
        for name, data in servers.items():
            if name == "chatforge":
                continue
            row = [f"[dim]chatforge / {name}[/dim]"]
            for size, share in keys:
                (m50, m99), (t50, t99) = pair(mine, size, share), pair(data, size, share)
                row.append(f"[dim]{ratio(m50, t50)} / {ratio(m99, t99)}[/dim]")
            latency.add_row(*row)
    out.print(latency)

    check = Table(title="Is the load generator the bottleneck? (saturation windows)")
    for title in (
        "server",
        "subs",
        "generator\nCPU %",
        "server\nCPU %",
        "other\nprocesses %",
        "frames\nper read",
        "unread by generator\nKiB (share of window)",
    ):
        check.add_column(title, justify="left" if title == "server" else "right")
    for name, data in servers.items():
        for size in sizes:
            sat = dig(data, "fanout", size, "saturation") or {}
            if "generator_cpu_pct" not in sat:
                continue
            check.add_row(
                name,
                size,
                number(sat["generator_cpu_pct"]),
                number(sat["server_cpu_pct"]),
                number(sat["other_cpu_pct"]),
                number(sat.get("frames_per_read"), 2),
                f"{number(sat.get('generator_unread_kib'), 0)}"
                f" ({number(100 * sat.get('generator_unread_share', float('nan')), 1)} %)",
            )
    out.print(check)

    notes = [
        "gen/srv/oth: CPU use of the load generator (CPU 1), of the server (CPU 0) and of"
        " every other process on the machine over the saturation window, in % of one core."
        " A generator well under 100 % is not the bottleneck; a large 'oth' means other work"
        " shared the two cores and the row is noisy.",
        "frames per read near 1 and little unread by the generator: it reads each frame as it"
        " arrives, so the work in flight waits on the server side.",
        "(n/a): the server did not accept permessage-deflate, so both memory columns measure"
        " the same thing.",
        "chatforge stores each message in SQLite before it broadcasts it; the peers only relay.",
    ]
    for name, data in servers.items():
        for key, entry in _entries(data):
            if isinstance(entry, dict) and entry.get("error"):
                notes.append(f"[red]{name} {key}: {entry['error']}[/red]")
    for note in notes:
        out.print(f"  {note}")
    info = results["machine"]
    out.print(
        f"  {info['cpu_model']}, {info['cores']} cores, Python {info['python']};"
        f" results in {RESULTS.relative_to(ROOT)}"
    )


def _entries(data: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for size, entry in data.get("fanout", {}).items():
        yield f"fan-out {size}", entry
    for key, entry in data.get("memory", {}).items():
        yield f"memory {key}", entry
    if "handshakes" in data:
        yield "handshakes", data["handshakes"]


def strict(value: Any) -> Any:
    """JSON has no NaN: a measurement that has no value becomes null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict(item) for item in value]
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    parser.add_argument("--sizes", default=None, help="subscribers, comma-separated")
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument(
        "--parts", default="fanout,memory,handshakes", help="which measurements to run"
    )
    parser.add_argument("--window", type=int, help="messages in flight at saturation")
    parser.add_argument(
        "--probes", type=int, help="subscribers that time every frame they get (default 32)"
    )
    parser.add_argument("--idle", type=int, help="idle sockets for the memory measurement")
    parser.add_argument("--handshakes", type=int, help="connects for the handshake rate")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=Config.quiet_wait,
        help="seconds to wait at most for other processes to go idle before each server",
    )
    parser.add_argument(
        "--retries", type=int, help="measure again when other processes were busy (default 2)"
    )
    args = parser.parse_args(argv)

    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers {sorted(unknown)}; choose from {', '.join(SERVERS)}")
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if args.quick:
        config = Config(
            sizes=[50, 200],
            warmup=0.5,
            saturation=1.5,
            latency=1.5,
            latency_max=3.0,
            latency_messages=15,
            idle=300,
            handshakes=300,
            retries=1,
            budget=240.0,
        )
    else:
        config = Config(sizes=[500, 2000])
    if args.sizes:
        config.sizes = [int(s) for s in args.sizes.split(",")]
    if args.window:
        config.window = args.window
    if args.probes:
        config.probes = args.probes
    if args.idle:
        config.idle = args.idle
    if args.handshakes:
        config.handshakes = args.handshakes
    config.quiet_wait = args.quiet_wait
    if args.retries is not None:
        config.retries = args.retries

    # Thousands of sockets on each side: the servers inherit this limit too.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pin_to(1)
    started = time.monotonic()
    config.deadline = started + config.budget
    results: dict[str, Any] = {
        "machine": machine(),
        "config": {k: v for k, v in asdict(config).items() if k != "deadline"},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "servers": {},
    }
    for name in servers:
        results["servers"][name] = measure_server(name, config, parts)
    results["seconds"] = round(time.monotonic() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(strict(results), indent=2) + "\n")
    report(results, config)
    console.print(f"done in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
