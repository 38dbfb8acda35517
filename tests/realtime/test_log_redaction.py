"""Tokens given in WebSocket URLs never reach the server's log (docs/security.md)."""

from __future__ import annotations

import logging

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from chatforge.web.log_redaction import RedactTokens, redact
from tests.realtime.client import ws_client
from tests.realtime.conftest import People
from tests.servers import LiveServer


async def test_a_live_server_logs_its_handshakes_without_their_tokens(
    server: LiveServer, people: People
) -> None:
    token = people.token(people.user)
    async with ws_client(server, token):
        pass
    # A token that is refused (its signature is wrong) stays out of the log too.
    forged = token[:-6] + "AAAAAA"
    with pytest.raises(InvalidStatus):
        async with websockets.connect(f"{server.ws_url}?token={forged}"):
            pass

    log = server.log.read_text()
    assert '"WebSocket /ws?token=[redacted]" [accepted]' in log
    assert '"WebSocket /ws?token=[redacted]" 403' in log
    signature, forged_signature = token.rsplit(".", 1)[1], forged.rsplit(".", 1)[1]
    assert signature not in log and forged_signature not in log


@pytest.mark.parametrize(
    ("logged", "shown"),
    [
        ("/ws?token=abc.def.ghi", "/ws?token=[redacted]"),
        ("/ws?after=5&token=abc&x=1", "/ws?after=5&token=[redacted]&x=1"),
        ("/api?access_token=abc#top", "/api?access_token=[redacted]#top"),
        ("/ws?token=", "/ws?token=[redacted]"),
        ("/ws?mytoken=kept&page=2", "/ws?mytoken=kept&page=2"),
        ("/ws", "/ws"),
    ],
)
def test_token_values_are_redacted_wherever_they_sit_in_the_query(logged: str, shown: str) -> None:
    assert redact(logged) == shown
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "%s - %s", (1, logged), None
    )
    assert RedactTokens().filter(record)
    assert record.getMessage() == f"1 - {shown}"
