"""Configuration, read from ``CHATFORGE_*`` environment variables.

Settings are built once by the entry point (CLI, app factory, tests) and passed along; nothing
reads the environment at import time.
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from limits import parse
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_BYTES = 32


class SettingsError(ValueError):
    """The configuration cannot be used to start chatforge."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHATFORGE_", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str = ""
    secret_key: str = ""
    redis_url: str = ""
    public_url: str = "http://127.0.0.1:8000"

    token_ttl_minutes: int = Field(default=60 * 12, ge=1)
    login_failures_per_username: int = Field(default=10, ge=1)
    login_failures_per_ip: int = Field(default=30, ge=1)
    login_window_minutes: int = Field(default=15, ge=1)
    max_active_per_moderator: int = Field(default=1, ge=1)
    claim_timeout_seconds: int = Field(default=300, ge=1)
    auto_assign: bool = False
    replay_cap: int = Field(default=1000, ge=1)
    typing_ttl_seconds: float = Field(default=5.0, gt=0)
    # Frames one WebSocket may send: this many a second on average, this many at once.
    ws_frames_per_second: float = Field(default=30.0, gt=0)
    ws_frame_burst: float = Field(default=60.0, ge=1)
    # Per-message deflate costs tens of KiB per socket and CPU per frame; off unless asked for.
    ws_compression: bool = False
    # Bytes a socket may have waiting to be sent before it counts as too slow and is closed
    # (it resumes from its last seq on reconnecting); 1 MiB is a few thousand frames.
    ws_send_buffer_bytes: int = Field(default=1 << 20, ge=4096)
    # uvicorn's line per HTTP request: about a tenth of a webhook's CPU. Turn it off where the
    # reverse proxy logs requests already.
    access_log: bool = True
    # Open connections (sockets and requests) one process serves; past it, new ones get 503.
    max_connections: int = Field(default=30000, ge=10)
    catch_up_seconds: float = Field(default=5.0, gt=0)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    # How soon after a write the WAL is checkpointed, on a thread of its own; 0 leaves it to
    # SQLite, which checkpoints inside every thousandth page's commit (store/checkpoints.py).
    sqlite_checkpoint_seconds: float = Field(default=0.5, ge=0, le=60)
    # Live sessions (L9), in the ``limits`` notation; instructors are exempt.
    session_message_rate: str = "5/10 seconds"
    session_reaction_rate: str = "10/minute"

    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from: str = ""
    twilio_api_url: str = "https://api.twilio.com"
    facebook_verify_token: str = ""
    facebook_app_secret: str = ""
    facebook_page_token: str = ""
    graph_api_url: str = "https://graph.facebook.com/v19.0"

    # Bots (B3, B6, B7). Modules are comma-separated import paths exposing ``bot`` or ``bots``;
    # channel_bots says which bot answers on which channel ("channel=bot,...").
    bot_modules: str = ""
    channel_bots: str = "whatsapp=challenge,messenger=challenge,web=challenge"
    challenges_dir: Path | None = None
    challenge_quota: int = Field(default=5, ge=1)
    challenge_quota_hours: float = Field(default=24.0, gt=0)
    # How often due idle timeouts fire (one process of several does it).
    bot_timeout_sweep_seconds: float = Field(default=15.0, gt=0)
    # A bot chat in which nothing was said for this long ends (done, ready for annotation); the
    # user's next message opens a new one. Looked for every minute, or a tenth of this if less.
    bot_chat_idle_minutes: float = Field(default=12 * 60, gt=0)
    # B4: the topic of a hand-off whose bot names no active topic; created when first needed.
    handoff_topic: str = Field(default="Mentoring", min_length=1, max_length=80)

    @field_validator("public_url")
    @classmethod
    def _public_url_is_http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(
                "CHATFORGE_PUBLIC_URL must be an http(s) URL such as https://chat.example.org"
            )
        return value.rstrip("/")

    @field_validator("session_message_rate", "session_reaction_rate")
    @classmethod
    def _is_rate(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"a rate such as '5/10 seconds' or '10/minute': {exc}") from exc
        return value

    @field_validator("channel_bots")
    @classmethod
    def _channel_bots_pairs(cls, value: str) -> str:
        for pair in filter(None, (p.strip() for p in value.split(","))):
            channel, _, bot = pair.partition("=")
            if not channel.strip() or not bot.strip():
                raise ValueError(
                    "CHATFORGE_CHANNEL_BOTS is a list of channel=bot pairs, for example"
                    " whatsapp=challenge,messenger=challenge"
                )
        return value

    @property
    def bots_by_channel(self) -> dict[str, str]:
        """Which bot answers on which channel, from ``channel_bots``."""
        pairs = (p.partition("=") for p in self.channel_bots.split(",") if p.strip())
        return {channel.strip(): bot.strip() for channel, _, bot in pairs}

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'chatforge.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def public_origin(self) -> str:
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @cached_property
    def signing_key(self) -> bytes:
        """The secret used for tokens, CSRF and flash signatures.

        Taken from ``CHATFORGE_SECRET_KEY`` when set; otherwise generated once and kept in
        ``data_dir/secret_key`` so that sessions survive a restart.
        """
        key = self.secret_key or self._stored_secret()
        raw = key.encode()
        if len(raw) < MIN_SECRET_BYTES:
            raise SettingsError(
                f"CHATFORGE_SECRET_KEY is {len(raw)} bytes long; use at least {MIN_SECRET_BYTES}"
                " (for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return raw

    def _stored_secret(self) -> str:
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        # Created with owner-only permissions from the start, never world-readable.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        return key

    def check(self) -> None:
        """Fail early, with a readable message, on settings the server cannot run with."""
        _ = self.signing_key
        if self.is_sqlite:
            self.data_dir.mkdir(parents=True, exist_ok=True)


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
