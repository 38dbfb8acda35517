"""A WebSocket load generator cheap enough not to be the bottleneck.

One process, one uvloop event loop, and a hand-written client on ``asyncio.Protocol``: the
HTTP/1.1 Upgrade handshake, masked client frames, and an incremental parser of server frames.
Per delivered frame a subscriber does almost nothing: it reads the frame header, checks a marker
near the start of the payload and bumps one shared counter. Only a few "probe" sockets look
inside the payload for the send timestamp (``"t=<perf_counter_ns> ...``) to measure latency.

Two wire dialects:

* ``plain``: text frames carry the application's JSON (chatforge, Starlette, ``websockets``).
* ``socketio``: Engine.IO v4 over a WebSocket only (``/socket.io/?EIO=4&transport=websocket``):
  the server opens with ``0{...}``, the client connects to ``/`` with ``40`` and waits for
  ``40{...}``; events are ``42["msg",{...}]``; the server pings with ``2`` and gets ``3``.

The measurements (saturation, open-loop latency, idle memory, handshakes) take a
:class:`Target`, which says how to reach one server and what to send it;
``benchmarks/compare.py`` builds one per contender.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import resource
import struct
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
# FIN + text, no RSV bits: the one frame kind the hot path looks at.
TEXT_FIN = 0x81
# The marker of a counted frame must start within this many bytes of the payload.
MARKER_WINDOW = 64
# A probe reads the send time from the payload: ``"t=<integer ns>`` then a space.
TIME_MARKER = b'"t='
_U16 = struct.Struct("!H").unpack_from
_U64 = struct.Struct("!Q").unpack_from
_pack_head_short = struct.Struct("!BB").pack
_pack_head_16 = struct.Struct("!BBH").pack
_pack_head_64 = struct.Struct("!BBQ").pack
_ZERO = b"\x00\x00\xff\xff"


class HandshakeError(Exception):
    """The server answered the Upgrade with something other than 101 (or hung up)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}" if status else reason)
        self.status = status
        self.reason = reason


class SetupError(Exception):
    """The server refused a set-up step (an error frame instead of the expected answer)."""


CONNECT_ERRORS = (OSError, HandshakeError, SetupError, TimeoutError, ConnectionError)


class Stats:
    """Counters shared by every subscriber socket of one run."""

    __slots__ = ("_waiter", "delivered", "frame_len", "latencies_ns", "reads", "sample", "wake_at")

    def __init__(self) -> None:
        self.delivered = 0
        self.reads = 0  # data_received calls of counting sockets
        self.latencies_ns: list[int] = []
        self.frame_len = 0
        self.sample = b""  # the first counted payload a probe saw (for the report)
        self.wake_at = 1 << 62
        self._waiter: asyncio.Future[None] | None = None

    def reset(self) -> None:
        self.delivered = 0
        self.reads = 0
        self.latencies_ns = []

    def wake(self) -> None:
        self.wake_at = 1 << 62
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def reach(self, count: int, within: float) -> bool:
        """Wait until ``delivered >= count``; False after ``within`` seconds."""
        if self.delivered >= count:
            return True
        self._waiter = asyncio.get_running_loop().create_future()
        self.wake_at = count
        try:
            await asyncio.wait_for(self._waiter, within)
        except TimeoutError:
            return False
        finally:
            self.wake_at = 1 << 62
            self._waiter = None
        return True


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte masking ``key`` (RFC 6455 section 5.3)."""
    n = len(payload)
    if not n:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def encode_frame(payload: bytes, opcode: int = OP_TEXT, key: bytes | None = None) -> bytes:
    """One final client frame, masked (with a random key unless one is given)."""
    if key is None:
        key = random.getrandbits(32).to_bytes(4, "big")
    n = len(payload)
    if n < 126:
        head = _pack_head_short(0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = _pack_head_16(0x80 | opcode, 0x80 | 126, n)
    else:
        head = _pack_head_64(0x80 | opcode, 0x80 | 127, n)
    return head + key + mask(payload, key)


class WSClient(asyncio.Protocol):
    """One client WebSocket.

    Before the handshake completes, bytes go to the HTTP response parser. After it, text frames
    that are final, uncompressed and carry ``marker`` within their first bytes are counted in
    ``stats`` (and timed, on a probe); every other message goes to a small inbox that
    :meth:`recv` reads, after the dialect's own control messages (Engine.IO ping) are answered.
    """

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        *,
        stats: Stats | None = None,
        marker: bytes = b"",
        probe: bool = False,
        dialect: str = "plain",
        deflate: bool = False,
        inbox_limit: int = 256,
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.stats = stats if stats is not None else Stats()
        self.marker = marker
        self.counting = bool(marker)
        self.probe = probe
        self.socketio = dialect == "socketio"
        self.offer_deflate = deflate
        self.deflate = False  # the server accepted permessage-deflate
        self.inbox: deque[bytes] = deque(maxlen=inbox_limit)
        self.pongs = 0
        self.close_code: int | None = None
        self.transport: asyncio.Transport | None = None
        self._key = base64.b64encode(os.urandom(16))
        self._open = False
        self._head = bytearray()
        self._buf = bytearray()
        self._need = 0
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self._fragment_compressed = False
        self._inflater: Any = None
        self._no_context_takeover = False
        self._close_sent = False
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._waiter: asyncio.Future[None] | None = None

    # -- transport callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        request = (
            f"GET {self.path} HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self._key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
        )
        if self.offer_deflate:
            request += "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        self.transport.write((request + "\r\n").encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self._open = False
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(0, f"connection closed: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)
        self._wake(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        # The hot path, kept in one piece: one call per chunk, a few operations per frame.
        if self._buf:
            self._buf += data
            if len(self._buf) < self._need:
                return
            data = bytes(self._buf)
            self._buf = bytearray()
        elif not self._open:
            if not self.opened.done():
                self._handshake(data)
            return
        n = len(data)
        pos = 0
        stats = self.stats
        stats.reads += 1
        marker = self.marker
        counting = self.counting
        need = 0
        while pos < n:
            if n - pos < 2:
                need = 2
                break
            b1 = data[pos + 1]
            length = b1 & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if n - pos < 4:
                    need = 4
                    break
                length = _U16(data, pos + 2)[0]
                start = pos + 4
            else:
                if n - pos < 10:
                    need = 10
                    break
                length = _U64(data, pos + 2)[0]
                start = pos + 10
            if b1 & 0x80:
                self._fail(1002, "server frames must not be masked")
                return
            end = start + length
            if end > n:
                need = end - pos
                break
            if (
                data[pos] == TEXT_FIN
                and counting
                and data.find(marker, start, min(end, start + MARKER_WINDOW)) >= 0
            ):
                stats.delivered += 1
                if self.probe:
                    self._time(data, start, end)
                if stats.delivered >= stats.wake_at:
                    stats.wake()
            else:
                self._frame(data[pos], data[start:end])
                if not self._open:
                    return
            pos = end
        if pos < n:
            self._buf = bytearray(data[pos:])
            self._need = need

    # -- slow paths ------------------------------------------------------------------------

    def _time(self, data: bytes, start: int, end: int) -> None:
        now = time.perf_counter_ns()
        stats = self.stats
        stats.frame_len = end - start
        if not stats.sample:
            stats.sample = bytes(data[start:end])
        i = data.find(TIME_MARKER, start, end)
        if i >= 0:
            j = data.find(b" ", i + 3, end)
            if j > 0:
                stats.latencies_ns.append(now - int(data[i + 3 : j]))

    def _handshake(self, data: bytes) -> None:
        self._head += data
        split = self._head.find(b"\r\n\r\n")
        if split < 0:
            if len(self._head) > 65536:
                self._reject(HandshakeError(0, "response head too long"))
            return
        head = bytes(self._head[:split]).decode("latin-1")
        rest = bytes(self._head[split + 4 :])
        self._head = bytearray()
        status_line, *lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            self._reject(HandshakeError(0, f"bad status line {status_line!r}"))
            return
        if status != 101:
            self._reject(HandshakeError(status, parts[2] if len(parts) > 2 else ""))
            return
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        expected = base64.b64encode(hashlib.sha1(self._key + GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != expected:
            self._reject(HandshakeError(status, "wrong Sec-WebSocket-Accept"))
            return
        extensions = headers.get("sec-websocket-extensions", "")
        self.deflate = "permessage-deflate" in extensions
        self._no_context_takeover = "server_no_context_takeover" in extensions
        self._open = True
        self.opened.set_result(None)
        if rest:
            self.data_received(rest)

    def _reject(self, error: HandshakeError) -> None:
        if not self.opened.done():
            self.opened.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def _frame(self, b0: int, payload: bytes) -> None:
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode >= OP_CLOSE:
            if opcode == OP_PING:
                self._write(encode_frame(payload, OP_PONG))
            elif opcode == OP_CLOSE:
                self.close_code = _U16(payload, 0)[0] if len(payload) >= 2 else 1005
                self.close(self.close_code if self.close_code != 1005 else 1000)
            elif opcode == OP_PONG:
                self.pongs += 1
            return
        if opcode == OP_CONTINUATION:
            self._fragments.append(payload)
            if not fin:
                return
            payload = b"".join(self._fragments)
            self._fragments = []
            self._message(payload, self._fragment_compressed)
            return
        if not fin:
            self._fragments = [payload]
            self._fragment_opcode = opcode
            self._fragment_compressed = bool(b0 & 0x40)
            return
        self._message(payload, bool(b0 & 0x40))

    def _message(self, payload: bytes, compressed: bool) -> None:
        if compressed:
            if self._inflater is None or self._no_context_takeover:
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            payload = self._inflater.decompress(payload + _ZERO)
        if self.counting and payload.find(self.marker, 0, MARKER_WINDOW) >= 0:
            stats = self.stats
            stats.delivered += 1
            if self.probe:
                self._time(payload, 0, len(payload))
            if stats.delivered >= stats.wake_at:
                stats.wake()
            return
        if self.socketio and payload == b"2":
            self.send(b"3")
            return
        self.inbox.append(payload)
        self._wake(None)

    def _wake(self, error: Exception | None) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _fail(self, code: int, reason: str) -> None:
        self.close(code)
        self._wake(ConnectionError(reason))

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    # -- API -----------------------------------------------------------------------------------

    def send(self, payload: bytes) -> None:
        """Send one text message (``payload`` is UTF-8)."""
        self._write(encode_frame(payload))

    async def recv(self, within: float = 30.0) -> bytes:
        """The next message that was not counted (and not a dialect control message)."""
        while not self.inbox:
            if not self._open:
                raise ConnectionError("connection closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, within)
            finally:
                self._waiter = None
        return self.inbox.popleft()

    async def recv_until(self, prefix: bytes, within: float = 30.0) -> bytes:
        """Skip messages until one starts with ``prefix``."""
        deadline = time.monotonic() + within
        while True:
            message = await self.recv(max(0.001, deadline - time.monotonic()))
            if message.startswith(prefix):
                return message

    def close(self, code: int = 1000) -> None:
        """Send a close frame (once) and close the TCP connection after it is written."""
        if self._open and not self._close_sent:
            self._close_sent = True
            self._write(encode_frame(struct.pack("!H", code), OP_CLOSE))
        self._open = False
        if self.transport is not None:
            self.transport.close()


async def connect(
    host: str,
    port: int,
    path: str,
    *,
    dialect: str = "plain",
    stats: Stats | None = None,
    marker: bytes = b"",
    probe: bool = False,
    deflate: bool = False,
    within: float = 30.0,
) -> WSClient:
    """Open a WebSocket; for ``socketio``, also connect to the default namespace."""
    loop = asyncio.get_running_loop()
    _, client = await asyncio.wait_for(
        loop.create_connection(
            lambda: WSClient(
                host,
                port,
                path,
                stats=stats,
                marker=marker,
                probe=probe,
                dialect=dialect,
                deflate=deflate,
            ),
            host,
            port,
        ),
        within,
    )
    try:
        await asyncio.wait_for(client.opened, within)
        if dialect == "socketio":
            opening = await client.recv(within)
            if not opening.startswith(b"0"):
                raise HandshakeError(101, f"expected an Engine.IO open packet, got {opening!r}")
            client.send(b"40")
            await client.recv_until(b"40", within)
    except BaseException:
        client.close()
        raise
    return client


# -- measurements --------------------------------------------------------------------------


@dataclass
class Target:
    """How to reach one server and what to send it.

    ``ready`` runs after :func:`connect` on every socket (chatforge: wait for ``hello``);
    ``subscribe`` after it on fan-out subscribers (chatforge: subscribe to the conversation).
    ``message(seq, t_ns, pad)`` is the publisher's payload, with ``pad`` filler bytes.
    """

    name: str
    host: str
    port: int
    dialect: str
    sub_path: str
    pub_path: str
    marker: bytes
    message: Callable[[int, int, int], bytes]
    ready: Callable[[WSClient], Awaitable[None]] | None = None
    subscribe: Callable[[WSClient], Awaitable[None]] | None = None
    pad: int = 0
    idle_path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    async def open(
        self,
        path: str,
        *,
        stats: Stats | None = None,
        probe: bool = False,
        deflate: bool = False,
        counted: bool = True,
        within: float = 60.0,
    ) -> WSClient:
        client = await connect(
            self.host,
            self.port,
            path,
            dialect=self.dialect,
            stats=stats,
            marker=self.marker if counted else b"",
            probe=probe,
            deflate=deflate,
            within=within,
        )
        try:
            if self.ready is not None:
                await self.ready(client)
        except BaseException:
            client.close()
            raise
        return client


class CpuMeter:
    """CPU time of this process, of the server process and of the whole machine.

    A snapshot is (wall seconds, generator CPU seconds, server CPU seconds, machine busy CPU
    seconds outside interrupts, machine interrupt CPU seconds); :meth:`percent` turns two into
    shares of one core. "other" is what the rest of the machine's processes used meanwhile: on
    a shared machine it says how noisy a measurement was. "irq" is interrupt and softirq time,
    much of it the loopback network the benchmark itself drives.
    """

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.tick = os.sysconf("SC_CLK_TCK")

    def snapshot(self) -> tuple[float, float, float, float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        server = float("nan")
        if self.server_pid is not None:
            try:
                with open(f"/proc/{self.server_pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                server = (int(fields[11]) + int(fields[12])) / self.tick
            except OSError:
                pass
        busy = irq = float("nan")
        try:
            with open("/proc/stat") as stat:
                # cpu  user nice system idle iowait irq softirq steal ...
                user, nice, system, _idle, _iowait, hard, soft, steal = (
                    int(v) for v in stat.readline().split()[1:9]
                )
            busy = (user + nice + system + steal) / self.tick
            irq = (hard + soft) / self.tick
        except (OSError, ValueError):
            pass
        return time.perf_counter(), usage.ru_utime + usage.ru_stime, server, busy, irq

    @staticmethod
    def percent(
        first: tuple[float, float, float, float, float],
        second: tuple[float, float, float, float, float],
    ) -> dict[str, float]:
        """Generator, server, other and interrupt CPU use between two snapshots, in % of one
        core."""
        wall = second[0] - first[0]
        generator = 100 * (second[1] - first[1]) / wall
        server = 100 * (second[2] - first[2]) / wall
        busy = 100 * (second[3] - first[3]) / wall
        return {
            "generator_cpu_pct": generator,
            "server_cpu_pct": server,
            "other_cpu_pct": max(0.0, busy - generator - server),
            "irq_cpu_pct": 100 * (second[4] - first[4]) / wall,
        }


def unread_bytes(port: int) -> int:
    """Bytes received by the kernel but not yet read, summed over the client sockets connected
    to ``port`` on 127.0.0.1 (``/proc/net/tcp``'s rx_queue)."""
    suffix = f":{port:04X}"
    total = 0
    try:
        with open("/proc/net/tcp") as table:
            next(table)
            for line in table:
                fields = line.split(None, 5)
                if fields[2].endswith(suffix):
                    total += int(fields[4].split(":")[1], 16)
    except OSError:
        return 0
    return total


async def gather_limited(
    count: int, make: Callable[[int], Awaitable[WSClient]], concurrency: int
) -> tuple[list[WSClient | None], list[str]]:
    """Open ``count`` sockets, ``concurrency`` at a time; (clients or None, error texts)."""
    clients: list[WSClient | None] = [None] * count
    errors: list[str] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            try:
                clients[index] = await make(index)
            except CONNECT_ERRORS as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return clients, errors


def summarize_errors(errors: list[str], total: int) -> str:
    counts: dict[str, int] = {}
    for error in errors:
        counts[error] = counts.get(error, 0) + 1
    listed = "; ".join(f"{text} x{n}" for text, n in sorted(counts.items(), key=lambda i: -i[1]))
    return f"{len(errors)} of {total} connects failed ({listed})"


class FanoutFailed(Exception):
    """The subscribers or the publisher could not be set up."""


@dataclass
class Fanout:
    """N subscribed sockets and one publisher on one target, kept open across phases."""

    target: Target
    subscribers: int
    probes: int = 32
    stats: Stats = field(default_factory=Stats)
    clients: list[WSClient] = field(default_factory=list)
    publisher: WSClient | None = None
    seq: int = 0

    async def __aenter__(self) -> Fanout:
        target, n = self.target, self.subscribers
        step = max(1, n // self.probes)

        async def subscriber(index: int) -> WSClient:
            client = await target.open(target.sub_path, stats=self.stats, probe=index % step == 0)
            try:
                if target.subscribe is not None:
                    await target.subscribe(client)
            except BaseException:
                client.close()
                raise
            return client

        clients, errors = await gather_limited(n, subscriber, 100)
        self.clients = [c for c in clients if c is not None]
        if not errors:
            try:
                self.publisher = await target.open(target.pub_path, counted=False)
            except CONNECT_ERRORS as exc:
                errors.append(f"publisher {type(exc).__name__}: {exc}")
        if errors:
            await self.__aexit__()
            raise FanoutFailed(summarize_errors(errors, n + 1))
        return self

    async def __aexit__(self, *_: object) -> None:
        for client in self.clients:
            client.close()
        if self.publisher is not None:
            self.publisher.close()
        await asyncio.sleep(0.2)

    def send(self) -> None:
        assert self.publisher is not None
        self.seq += 1
        self.publisher.send(self.target.message(self.seq, time.perf_counter_ns(), self.target.pad))

    async def drain(self, sent: int, within: float) -> int:
        """Wait for every delivery of ``sent`` messages; returns how many are missing."""
        expected = sent * len(self.clients)
        await self.stats.reach(expected, within)
        return expected - self.stats.delivered

    async def calibrate(self, frame_bytes: int) -> int:
        """Send one message, then pad so that the frame the server sends is ``frame_bytes``."""
        self.stats.reset()
        self.stats.sample = b""
        self.send()
        if await self.drain(1, 30):
            raise FanoutFailed(
                f"calibration message reached {self.stats.delivered} of {len(self.clients)}"
            )
        measured = self.stats.frame_len
        self.target.pad = max(1, self.target.pad + frame_bytes - measured)
        self.stats.reset()
        self.stats.sample = b""
        self.send()
        if await self.drain(1, 30):
            raise FanoutFailed("second calibration message lost")
        self.stats.reset()
        return self.stats.frame_len or measured

    async def saturate(
        self, *, window: int, warmup: float, seconds: float, meter: CpuMeter
    ) -> dict[str, Any]:
        """Send as fast as deliveries keep up, at most ``window`` messages' deliveries
        outstanding; deliveries per second over ``seconds`` after ``warmup``."""
        stats, n = self.stats, len(self.clients)
        stats.reset()
        sent = 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = last = None
        first_delivered = first_reads = 0
        stall = 0
        backlog: list[int] = []
        next_sample = started + warmup + 0.5
        while True:
            now = loop.time()
            if first is None and now - started >= warmup:
                first, first_delivered, first_reads = meter.snapshot(), stats.delivered, stats.reads
            if first is not None and now - started >= warmup + seconds:
                last = meter.snapshot()
                break
            if now >= next_sample:
                backlog.append(unread_bytes(self.target.port))
                next_sample = now + 1.0
            while (sent + 1 - window) * n <= stats.delivered:
                self.send()
                sent += 1
            if not await stats.reach((sent + 1 - window) * n, 10):
                stall += 1
                if stall >= 2:
                    break
        if first is None or last is None:
            missing = await self.drain(sent, 2)
            return {"error": f"stalled: {missing} deliveries of {sent} messages missing"}
        delivered, reads = stats.delivered, stats.reads
        cpu = CpuMeter.percent(first, last)
        missing = await self.drain(sent, 30)
        outstanding = window * n * max(1, stats.frame_len)
        mean_backlog = sum(backlog) / len(backlog) if backlog else float("nan")
        result = {
            "deliveries_per_s": (delivered - first_delivered) / (last[0] - first[0]),
            "messages_per_s": (delivered - first_delivered) / n / (last[0] - first[0]),
            "sent": sent,
            "missing": missing,
            "window": window,
            # Frames per read near 1: the generator reads each frame as it arrives. Bytes the
            # kernel holds for the generator's sockets, against the window's worth in flight:
            # a generator that kept up leaves little unread.
            "frames_per_read": (delivered - first_delivered) / max(1, reads - first_reads),
            "generator_unread_kib": mean_backlog / 1024,
            "generator_unread_share": mean_backlog / outstanding,
            **cpu,
        }
        stats.reset()
        return result

    async def open_loop(self, *, rate: float, seconds: float, meter: CpuMeter) -> dict[str, Any]:
        """Send ``rate`` messages per second on a fixed schedule; latency on the probes."""
        stats = self.stats
        stats.reset()
        interval = 1 / rate
        count = max(1, int(rate * seconds))
        lags: list[float] = []
        first = meter.snapshot()
        started = time.perf_counter()
        for i in range(count):
            due = started + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(time.perf_counter() - due)
            self.send()
        missing = await self.drain(count, 30)
        last = meter.snapshot()
        cpu = CpuMeter.percent(first, last)
        latencies = sorted(stats.latencies_ns)
        stats.reset()
        return {
            "rate_msgs_per_s": rate,
            "sent": count,
            "missing": missing,
            "samples": len(latencies),
            "p50_ms": quantile(latencies, 0.50) / 1e6,
            "p99_ms": quantile(latencies, 0.99) / 1e6,
            "max_ms": (latencies[-1] / 1e6) if latencies else float("nan"),
            "send_lag_p99_ms": quantile(sorted(lags), 0.99) * 1000,
            **cpu,
        }


def quantile(ordered: list[Any], fraction: float) -> float:
    if not ordered:
        return float("nan")
    return float(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))])


async def idle_memory(
    target: Target, count: int, *, deflate: bool, rss_kib: Callable[[], int], settle: float = 1.0
) -> dict[str, Any]:
    """Server RSS growth per idle socket (handshaken, and ready in the target's dialect)."""
    await asyncio.sleep(settle / 2)
    before = rss_kib()

    async def one(_: int) -> WSClient:
        return await target.open(target.idle_path or target.sub_path, deflate=deflate)

    clients, errors = await gather_limited(count, one, 100)
    opened = [c for c in clients if c is not None]
    await asyncio.sleep(settle)
    after = rss_kib()
    accepted = sum(1 for c in opened if c.deflate)
    for client in opened:
        client.close()
    await asyncio.sleep(0.2)
    return {
        "sockets": len(opened),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_socket": (after - before) / len(opened) if opened else float("nan"),
        "deflate_accepted": accepted,
        "error": summarize_errors(errors, count) if errors else None,
    }


async def handshakes(target: Target, total: int, *, concurrency: int = 50) -> dict[str, Any]:
    """Complete connects per second (until the dialect's first server frame), closing each."""
    done = 0
    errors: list[str] = []

    async def one(_: int) -> WSClient:
        client = await target.open(target.idle_path or target.sub_path, counted=False)
        client.close()
        return client

    started = time.perf_counter()
    clients, errors = await gather_limited(total, one, concurrency)
    elapsed = time.perf_counter() - started
    done = sum(1 for c in clients if c is not None)
    await asyncio.sleep(0.2)
    return {
        "handshakes_per_s": done / elapsed,
        "completed": done,
        "seconds": elapsed,
        "error": summarize_errors(errors, total) if errors else None,
    }
