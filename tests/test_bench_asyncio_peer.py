"""``benchmarks/peers/asyncio_peer.py``, the hand-written relay the comparison reads the other
servers against, speaks WebSocket correctly: a handshake a real client accepts, every text
message relayed to every socket, pings answered, closes echoed, what it does not handle refused.
Nothing here is timed."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest
from benchmarks.harness import free_port, pinned_process
from benchmarks.peers.asyncio_peer import accept_key, frame, unmask
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.peers.asyncio_peer", "--port", str(port)]
    with pinned_process("asyncio-peer", command, port):
        yield f"ws://127.0.0.1:{port}/"


def test_the_accept_key_and_frames_follow_rfc_6455() -> None:
    # The worked example of RFC 6455, section 1.3.
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert frame(0x1, b"Hello") == b"\x81\x05Hello"
    assert frame(0x1, b"x" * 200)[:4] == b"\x81\x7e\x00\xc8"
    assert frame(0x1, b"x" * 70000)[:10] == b"\x81\x7f" + (70000).to_bytes(8, "big")
    # Section 5.7: a masked "Hello".
    assert unmask(bytes.fromhex("7f9f4d5158"), bytes.fromhex("37fa213d")) == b"Hello"


def test_every_text_message_reaches_every_socket_in_every_length_encoding(url: str) -> None:
    async def run() -> None:
        async with connect(url, compression=None) as a, connect(url, compression=None) as b:
            for size in (5, 200, 70_000):
                await a.send("m" * size)
                assert await a.recv() == "m" * size
                assert await b.recv() == "m" * size
            await (await b.ping(b"are you there"))

    asyncio.run(run())


def test_a_fragmented_message_is_refused_with_1003(url: str) -> None:
    async def run() -> None:
        async with connect(url, compression=None) as a:
            await a.send(iter(["one ", "message in two fragments"]))
            with pytest.raises(ConnectionClosedError) as closed:
                await a.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003

    asyncio.run(run())
