"""Slow and abusive clients against a real server: 200 connections trickling their request
headers a byte at a time (slowloris) do not stop /healthz from answering quickly, and a request
head over 16 KiB is refused with a 431."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx

from tests.servers import LiveServer

CONNECTIONS = 200
LIMIT = 0.500


async def trickle(port: int, stop: asyncio.Event, opened: list[int]) -> None:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    opened.append(1)
    try:
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000:
            if stop.is_set():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.5)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def test_trickling_headers_do_not_starve_healthz(server: LiveServer) -> None:
    stop = asyncio.Event()
    opened: list[int] = []
    slow = [asyncio.create_task(trickle(server.port, stop, opened)) for _ in range(CONNECTIONS)]
    await asyncio.sleep(2.0)  # every connection is open and mid-header
    timings: list[float] = []
    statuses: list[int] = []
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=5.0) as http:
            for _ in range(10):
                started = time.perf_counter()
                response = await http.get("/healthz", headers={"Connection": "close"})
                timings.append(time.perf_counter() - started)
                statuses.append(response.status_code)
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(*slow)
    print(
        f"slow clients: {len(opened)} trickling connections; /healthz max "
        f"{max(timings) * 1000:.0f} ms, median {sorted(timings)[5] * 1000:.0f} ms"
    )
    assert len(opened) == CONNECTIONS
    assert statuses == [200] * 10
    assert max(timings) < LIMIT


async def request_with_header(port: int, size: int) -> bytes:
    """Everything the server answers to a GET /healthz carrying a ``size``-byte header."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
            + b"a" * size
            + b"\r\n\r\n"
        )
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def test_request_heads_over_16_kib_are_refused(server: LiveServer) -> None:
    assert (await request_with_header(server.port, 12_000)).startswith(b"HTTP/1.1 200 OK")
    # The client is still sending when the server refuses: it must get the 431 all the same
    # (a server closing on unread bytes resets the connection, and the answer is lost).
    for size in (64_000, 256_000):
        refused = await request_with_header(server.port, size)
        assert refused.startswith(b"HTTP/1.1 431 Request Header Fields Too Large"), size
    # The server read no more than it had to, and is still serving.
    async with httpx.AsyncClient(base_url=server.url, timeout=5.0) as http:
        assert (await http.get("/healthz")).status_code == 200
