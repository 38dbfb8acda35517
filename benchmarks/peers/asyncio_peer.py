"""The practical limit: WebSocket by hand on asyncio, one frame built per message.

    python -m benchmarks.peers.asyncio_peer --port 8768

An ``asyncio.Protocol`` per connection on uvloop: it answers the Upgrade itself (no extensions
accepted, so no compression), unmasks the client's frames, and relays each text message to every
socket with one ``transport.write`` of one frame built once. No framework, no per-socket task or
queue, no flow control: what the fastest Python relay of this shape does, and so the row the
others are read against. It does only what the benchmark needs: no fragmented messages (closed
with code 1003), a 1 MiB limit per frame, no timeouts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import struct
from typing import ClassVar, cast

import uvloop

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_FRAME = 1 << 20
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked final frame (servers never mask): the same bytes suit every socket."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return head + payload


def unmask(payload: bytes, key: bytes) -> bytes:
    length = len(payload)
    mask = int.from_bytes((key * (length // 4 + 1))[:length], "big")
    return (int.from_bytes(payload, "big") ^ mask).to_bytes(length, "big")


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


class Relay(asyncio.Protocol):
    clients: ClassVar[set[Relay]] = set()

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        Relay.clients.discard(self)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            self.handshake()
        if self.upgraded:
            self.frames()

    def handshake(self) -> None:
        assert self.transport is not None
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > 16384:
                self.transport.close()
            return
        head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
        key = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        if key is None:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            self.transport.close()
            return
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n"
        )
        self.upgraded = True
        Relay.clients.add(self)

    def frames(self) -> None:
        assert self.transport is not None
        buffer = self.buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    break
                (length,), offset = struct.unpack_from("!H", buffer, 2), 4
            elif length == 127:
                if len(buffer) < 10:
                    break
                (length,), offset = struct.unpack_from("!Q", buffer, 2), 10
            if length > MAX_FRAME or not second & 0x80:
                # Too long or unmasked: no frame to skip to, so hang up.
                self.transport.close()
                return
            end = offset + 4 + length
            if len(buffer) < end:
                break
            payload = unmask(buffer[offset + 4 : end], buffer[offset : offset + 4])
            buffer = buffer[end:]
            opcode = first & 0x0F
            if self.closing and opcode != CLOSE:
                continue
            if not first & 0x80 or opcode == 0:
                # Fragmented: the benchmark never sends that. Close, then wait for the client's
                # close frame, so that what it sends meanwhile cannot reset the connection.
                self.closing = True
                self.transport.write(frame(CLOSE, struct.pack("!H", 1003)))
            elif opcode == TEXT:
                out = frame(TEXT, payload)
                for client in Relay.clients:
                    assert client.transport is not None
                    client.transport.write(out)
            elif opcode == PING:
                self.transport.write(frame(PONG, payload))
            elif opcode == CLOSE:
                if not self.closing:
                    self.transport.write(frame(CLOSE, payload[:2]))
                self.transport.close()
                return
        self.buffer = buffer


async def main(host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Relay, host, port, backlog=2048)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8768)
    args = parser.parse_args()
    uvloop.run(main(args.host, args.port))
