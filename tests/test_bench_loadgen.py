"""The benchmark load generator's hand-written WebSocket client speaks the protocol correctly.

Against tiny scripted servers on 127.0.0.1 (raw TCP, so the test decides how frames are cut
into chunks), then end to end against the ``websockets`` peer server. Nothing here is timed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from benchmarks.compare import CHAT_MARKER, peer_message, peer_target
from benchmarks.loadgen import (
    GUID,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    CpuMeter,
    Fanout,
    HandshakeError,
    Stats,
    WSClient,
    connect,
    encode_frame,
    mask,
)

from tests.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def server_frame(payload: bytes, opcode: int = OP_TEXT, *, fin: bool = True) -> bytes:
    """An unmasked server frame with the shortest length encoding."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 126, n)
    else:
        head = struct.pack("!BBQ", first, 127, n)
    return head + payload


async def read_client_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One client frame; clients must mask, so an unmasked one fails the test."""
    b0, b1 = await reader.readexactly(2)
    assert b1 & 0x80, "client frames must be masked"
    length = b1 & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    key = await reader.readexactly(4)
    return b0 & 0x0F, mask(await reader.readexactly(length), key)


def accept_response(request: bytes) -> bytes:
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


@asynccontextmanager
async def tiny_server(script: Script, *, refuse: bytes | None = None) -> AsyncIterator[int]:
    """A raw server: answers the Upgrade (or ``refuse``s it), then runs ``script``."""
    failures: list[BaseException] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            if refuse is not None:
                writer.write(refuse)
                await writer.drain()
                return
            writer.write(accept_response(request))
            await writer.drain()
            await script(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except BaseException as exc:  # reported by the test, not lost in a callback
            failures.append(exc)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
    if failures:
        raise failures[0]


async def until_eof(reader: asyncio.StreamReader) -> None:
    """Keep the connection until the client hangs up."""
    while await reader.read(65536):
        pass


async def send_chunks(writer: asyncio.StreamWriter, wire: bytes, cuts: list[int]) -> None:
    """Write ``wire`` in pieces cut at ``cuts``, pausing so each piece arrives on its own."""
    edges = [0, *sorted(set(cuts)), len(wire)]
    for start, end in itertools.pairwise(edges):
        writer.write(wire[start:end])
        await writer.drain()
        await asyncio.sleep(0.02)


def offsets(frames: list[bytes]) -> list[int]:
    positions, total = [], 0
    for frame in frames:
        positions.append(total)
        total += len(frame)
    return positions


PAYLOADS = [
    b"a" * 5,
    b"b" * 125,  # longest 7-bit length
    b"c" * 126,  # shortest 16-bit length
    b"d" * 300,
    b"e" * 65535,  # longest 16-bit length
    b"f" * 65536,  # shortest 64-bit length
    b"g" * 70001,
    b"",
    "héllo ✓".encode(),
]


def cuts_for(frames: list[bytes]) -> list[int]:
    """Cuts inside 2-, 4- and 10-byte headers and inside payloads; some chunks hold many frames
    (the first four frames share one chunk, so do the last two)."""
    at = offsets(frames)
    return [
        at[4] + 1,  # inside the 16-bit header of the 65535-byte frame
        at[4] + 3,
        at[4] + 1000,  # inside its payload
        at[5] + 2,  # inside the 64-bit header
        at[5] + 9,
        at[5] + 40000,
        at[6],
        at[6] + 1,  # between the two header bytes
        at[6] + 10,  # right after the header
        at[7],
    ]


async def test_frames_split_across_chunks_and_several_per_chunk() -> None:
    frames = [server_frame(p) for p in PAYLOADS]
    wire = b"".join(frames)

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send_chunks(writer, wire, cuts_for(frames))
        await until_eof(reader)

    async with tiny_server(script) as port:
        client = await connect("127.0.0.1", port, "/")
        received = [await client.recv(10) for _ in PAYLOADS]
        client.close()
    assert received == PAYLOADS


async def test_counted_frames_are_counted_wherever_they_are_cut() -> None:
    marker = b'"type":"chat_message"'
    payloads = [b'{"type":"chat_message","body":"' + b"x" * n + b'"}' for n in (3, 200, 70000)]
    payloads.insert(1, b'{"type":"presence"}')  # not counted: goes to the inbox
    frames = [server_frame(p) for p in payloads] * 3
    wire = b"".join(frames)
    at = offsets(frames)
    cuts = [at[1] + 1, at[2] + 3, at[3] + 5, at[3] + 60000, at[6] + 1, at[9] + 100]

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send_chunks(writer, wire, cuts)
        await until_eof(reader)

    async with tiny_server(script) as port:
        stats = Stats()
        client = await connect("127.0.0.1", port, "/", stats=stats, marker=marker)
        assert await stats.reach(9, 10)
        other = [await client.recv(10) for _ in range(3)]
        client.close()
    assert stats.delivered == 9
    assert other == [b'{"type":"presence"}'] * 3


async def test_every_split_point_of_a_small_stream() -> None:
    """Fed straight to the protocol: every way of cutting the stream in two gives the same."""
    payloads = [b"x", b"y" * 130, b"z" * 70000, b"w" * 20]
    wire = b"".join(server_frame(p) for p in payloads)
    cut_points = [*range(0, 150), *range(len(wire) - 100, len(wire) + 1)]
    for cut in cut_points:
        client = WSClient("127.0.0.1", 1, "/")
        client._open = True  # past the handshake
        client.data_received(wire[:cut])
        client.data_received(wire[cut:])
        assert list(client.inbox) == payloads, cut
        client.opened.cancel()


async def test_ping_gets_a_pong_and_close_gets_a_close() -> None:
    seen: list[tuple[int, bytes]] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ping = server_frame(b"are you there?", OP_PING)
        await send_chunks(writer, ping + server_frame(b"after the ping"), [1, 5])
        seen.append(await read_client_frame(reader))
        writer.write(server_frame(struct.pack("!H", 1001) + b"bye", OP_CLOSE))
        await writer.drain()
        seen.append(await read_client_frame(reader))

    async with tiny_server(script) as port:
        client = await connect("127.0.0.1", port, "/")
        assert await client.recv(10) == b"after the ping"
        await asyncio.wait_for(client.closed, 10)
    assert seen[0] == (OP_PONG, b"are you there?")
    assert seen[1][0] == OP_CLOSE
    assert struct.unpack("!H", seen[1][1][:2]) == (1001,)
    assert client.close_code == 1001


async def test_client_frames_are_masked_with_every_length() -> None:
    sizes = [0, 1, 125, 126, 65535, 65536, 100000]
    got: list[tuple[int, bytes]] = []

    async def script(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
        for _size in sizes:
            got.append(await read_client_frame(reader))

    async with tiny_server(script) as port:
        client = await connect("127.0.0.1", port, "/")
        for size in sizes:
            client.send(bytes(range(256)) * (size // 256) + b"q" * (size % 256))
        await asyncio.wait_for(client.closed, 10)
    assert [len(p) for _, p in got] == sizes
    assert all(op == OP_TEXT for op, _ in got)
    assert got[-1][1][:256] == bytes(range(256))
    assert encode_frame(b"hi", key=b"\x00\x00\x00\x00") == b"\x81\x82\x00\x00\x00\x00hi"


async def test_a_refused_handshake_says_why() -> None:
    async def script(_: asyncio.StreamReader, __: asyncio.StreamWriter) -> None:
        raise AssertionError("not reached")

    refusal = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
    async with tiny_server(script, refuse=refusal) as port:
        with pytest.raises(HandshakeError) as raised:
            await connect("127.0.0.1", port, "/", within=10)
    assert raised.value.status == 503


async def test_socketio_dialect_connects_to_the_namespace_and_answers_pings() -> None:
    sent: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(server_frame(b'0{"sid":"abc","upgrades":[],"pingInterval":25000}'))
        await writer.drain()
        sent.append((await read_client_frame(reader))[1])
        writer.write(server_frame(b'40{"sid":"def"}') + server_frame(b"2"))
        await writer.drain()
        sent.append((await read_client_frame(reader))[1])
        writer.write(server_frame(b'42["msg",{"type":"chat_message","body":"t=1 x"}]'))
        await writer.drain()
        await until_eof(reader)

    async with tiny_server(script) as port:
        stats = Stats()
        client = await connect(
            "127.0.0.1", port, "/socket.io/?EIO=4", dialect="socketio", stats=stats, marker=b"42["
        )
        assert await stats.reach(1, 10)
        client.close()
    assert sent == [b"40", b"3"]


@contextmanager
def websockets_peer() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.peers.websockets_peer", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(10)


async def test_end_to_end_every_message_reaches_every_subscriber_once() -> None:
    subscribers, messages = 20, 50
    with websockets_peer() as port:
        target = peer_target("websockets", port)
        async with Fanout(target, subscribers, probes=4) as fanout:
            assert await fanout.calibrate(250) > 0
            for _ in range(messages):
                fanout.send()
            assert await fanout.drain(messages, 20) == 0
            await asyncio.sleep(0.3)  # nothing more arrives
            assert fanout.stats.delivered == messages * subscribers
            assert len(fanout.stats.latencies_ns) == messages * 4
            fanout.stats.reset()
            # A short burst at the window limit, then a short open-loop run: nothing is lost.
            meter = CpuMeter(None)
            saturated = await fanout.saturate(window=4, warmup=0.1, seconds=0.3, meter=meter)
            assert saturated["missing"] == 0, saturated
            assert saturated["sent"] > 0
            steady = await fanout.open_loop(rate=50, seconds=0.3, meter=meter)
            assert steady["missing"] == 0, steady
            assert steady["samples"] == steady["sent"] * 4
    assert CHAT_MARKER in peer_message(1, 2, 3)
