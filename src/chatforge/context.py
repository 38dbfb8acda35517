"""The long-lived resources of a running chatforge, built once at start-up and passed along."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx
from limits.aio.storage import MemoryStorage, Storage

from chatforge.auth.passwords import PasswordHasher
from chatforge.auth.throttle import LoginThrottle
from chatforge.auth.tokens import TokenSigner
from chatforge.bots.registry import BotRegistry
from chatforge.bots.runtime import BotRuntime
from chatforge.channels.base import Channel
from chatforge.channels.facebook_messenger import FacebookMessenger
from chatforge.channels.gateway import ChannelGateway
from chatforge.channels.twilio_whatsapp import TwilioWhatsApp
from chatforge.services.accounts import AccountService
from chatforge.services.bots import BotService
from chatforge.services.conversations import ConversationService
from chatforge.services.features import FeatureService
from chatforge.services.topics import TopicService
from chatforge.settings import Settings
from chatforge.store.database import Database


@dataclass
class AppContext:
    settings: Settings
    db: Database
    tokens: TokenSigner
    accounts: AccountService
    topics: TopicService
    features: FeatureService
    conversations: ConversationService
    http: httpx.AsyncClient
    bots: BotService
    bot_runtime: BotRuntime
    channels: ChannelGateway
    whatsapp: TwilioWhatsApp
    messenger: FacebookMessenger

    async def close(self) -> None:
        await self.http.aclose()
        await self.db.dispose()


def build_context(settings: Settings, *, limit_storage: Storage | None = None) -> AppContext:
    settings.check()
    db = Database(settings.resolved_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    throttle = LoginThrottle(
        limit_storage or MemoryStorage(),
        per_username=settings.login_failures_per_username,
        per_ip=settings.login_failures_per_ip,
        window_minutes=settings.login_window_minutes,
    )
    hasher = PasswordHasher()
    # One client for every outbound platform call, so connections are reused across requests.
    http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
    registry = BotRegistry.from_settings(settings)
    runtime = BotRuntime(db, registry)
    whatsapp = TwilioWhatsApp(settings, http)
    messenger = FacebookMessenger(settings, http)
    senders: dict[str, Channel] = {whatsapp.name: whatsapp, messenger.name: messenger}
    gateway = ChannelGateway(db, registry, runtime, senders)
    runtime.outbox = gateway
    return AppContext(
        settings=settings,
        db=db,
        tokens=TokenSigner(settings.signing_key, timedelta(minutes=settings.token_ttl_minutes)),
        accounts=AccountService(db, hasher, throttle),
        topics=TopicService(db),
        features=FeatureService(db),
        conversations=ConversationService(db),
        http=http,
        bots=BotService(db, registry),
        bot_runtime=runtime,
        channels=gateway,
        whatsapp=whatsapp,
        messenger=messenger,
    )
