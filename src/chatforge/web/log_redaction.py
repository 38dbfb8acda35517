"""Bearer tokens never reach the server's logs.

WebSocket clients may sign in with ``?token=`` in the URL (docs/protocol.md). uvicorn logs every
handshake with its path and query string (``"WebSocket /ws?token=..." [accepted]``) through
``uvicorn.error`` at INFO, whatever the access log setting, and its access log writes HTTP paths
the same way: whoever could read the logs could act as those users until their tokens expire.
:class:`RedactTokens`, on both loggers, replaces the value of every ``token`` or
``access_token`` query parameter with ``[redacted]`` before any handler sees the record.
"""

from __future__ import annotations

import logging
import re

SERVER_LOGGERS = ("uvicorn.error", "uvicorn.access")
_TOKEN_IN_QUERY = re.compile(r"([?&](?:access_)?token=)[^&#\s\"']*")


def redact(text: str) -> str:
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text) if "token=" in text else text


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_tokens_in_server_logs() -> None:
    """Put :class:`RedactTokens` on uvicorn's loggers (once, however often it is called)."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
