"""The long-lived resources of a running chatforge, built once at start-up and passed along."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from limits.aio.storage import Storage

from chatforge.auth.passwords import PasswordHasher
from chatforge.auth.throttle import LoginThrottle
from chatforge.auth.tokens import TokenSigner
from chatforge.backends import build_backends
from chatforge.bots.registry import BotRegistry
from chatforge.bots.runtime import BotRuntime
from chatforge.bots.transcript import ConversationTranscript
from chatforge.channels.base import Channel
from chatforge.channels.facebook_messenger import FacebookMessenger
from chatforge.channels.gateway import ChannelGateway
from chatforge.channels.relay import ChannelRelay
from chatforge.channels.twilio_whatsapp import TwilioWhatsApp
from chatforge.channels.web import WebWidget
from chatforge.realtime.broker import Broker
from chatforge.realtime.flood import FloodCooldown
from chatforge.realtime.hub import Hub
from chatforge.realtime.redis_broker import RedisBroker
from chatforge.realtime.typing import TypingTracker
from chatforge.services.accounts import AccountService
from chatforge.services.agreement import AgreementService
from chatforge.services.annotation import AnnotationService
from chatforge.services.bot_chats import BotChats
from chatforge.services.bots import BotService
from chatforge.services.conversations import ConversationService
from chatforge.services.coordination import Leases
from chatforge.services.datasets import DatasetService
from chatforge.services.eventlog import EventHistory, EventLog
from chatforge.services.exports import ExportService
from chatforge.services.features import FeatureService
from chatforge.services.handoff import SupportHandoffDesk
from chatforge.services.hands import HandService
from chatforge.services.labels import LabelService
from chatforge.services.messages import MessageService
from chatforge.services.moderation import ModerationService
from chatforge.services.presence import Presence
from chatforge.services.privacy import PrivacyService
from chatforge.services.profanity import ProfanityFilter
from chatforge.services.ratelimits import LimitsRateLimits, rule
from chatforge.services.reactions import ReactionService
from chatforge.services.room_rules import RoomRules
from chatforge.services.sessions import SessionService
from chatforge.services.support import SupportService
from chatforge.services.topics import TopicService
from chatforge.settings import Settings
from chatforge.store.database import Database


@dataclass
class AppContext:
    settings: Settings
    db: Database
    tokens: TokenSigner
    broker: Broker
    hub: Hub
    presence: Presence
    leases: Leases
    limits: Storage
    typing: TypingTracker
    log: EventLog
    accounts: AccountService
    topics: TopicService
    features: FeatureService
    conversations: ConversationService
    messages: MessageService
    support: SupportService
    http: httpx.AsyncClient
    bots: BotService
    bot_runtime: BotRuntime
    bot_chats: BotChats
    channels: ChannelGateway
    whatsapp: TwilioWhatsApp
    messenger: FacebookMessenger
    handoff: SupportHandoffDesk
    relay: ChannelRelay
    web_chat: WebWidget
    sessions: SessionService
    moderation: ModerationService
    reactions: ReactionService
    hands: HandService
    exports: ExportService
    annotation: AnnotationService
    labels: LabelService
    agreement: AgreementService
    datasets: DatasetService
    privacy: PrivacyService
    # Users cut off for flooding /ws, refused new sockets for a while (this process only).
    flood_cooldown: FloodCooldown = field(default_factory=FloodCooldown)

    async def start(self) -> None:
        if isinstance(self.broker, RedisBroker):
            # Envelopes published while Redis was away never arrive: read them back.
            self.broker.on_reconnect(self.hub.catch_up)
        await self.presence.start()
        await self.broker.start()

    async def close(self) -> None:
        # Messages, reactions and raised hands still queued for a batch are committed and
        # acked before anything closes; webhooks still waiting for a batch are refused (a 503
        # the platform retries), then moderators' replies still queued for a channel go out
        # before the HTTP client closes.
        await self.messages.close()
        await self.reactions.close()
        await self.hands.close()
        await self.sessions.close()
        await self.channels.close()
        await self.relay.close()
        await self.http.aclose()
        await self.presence.close()
        await self.broker.close()
        await self.db.dispose()

    @property
    def health(self) -> dict[str, str]:
        """What /healthz reports besides the database."""
        if not self.settings.redis_url:
            return {"broker": "memory"}
        return {"broker": "ok" if self.broker.healthy else "unavailable"}


def build_context(settings: Settings, *, limit_storage: Storage | None = None) -> AppContext:
    settings.check()
    db = Database(
        settings.resolved_database_url,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        checkpoint_seconds=settings.sqlite_checkpoint_seconds,
    )
    backends = build_backends(settings)
    # One counter store for every limit (logins, room messages, reactions): memory in one
    # process, Redis when several processes serve the same rooms.
    storage = limit_storage or backends.limits
    throttle = LoginThrottle(
        storage,
        per_username=settings.login_failures_per_username,
        per_ip=settings.login_failures_per_ip,
        window_minutes=settings.login_window_minutes,
    )
    broker, presence = backends.broker, backends.presence
    log = EventLog(db, broker)
    # One client for every outbound platform call, so connections are reused across requests.
    http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
    registry = BotRegistry.from_settings(settings)
    runtime = BotRuntime(db, registry, transcript=ConversationTranscript(log))
    whatsapp = TwilioWhatsApp(settings, http)
    messenger = FacebookMessenger(settings, http)
    senders: dict[str, Channel] = {whatsapp.name: whatsapp, messenger.name: messenger}
    gateway = ChannelGateway(db, registry, runtime, senders)
    runtime.outbox = gateway
    rate_limits = LimitsRateLimits(storage)
    rooms = RoomRules(
        rate_limits, ProfanityFilter(), message_rule=rule(settings.session_message_rate)
    )
    messages = MessageService(db, log, rooms)
    support = SupportService(
        db,
        log,
        presence,
        max_active_per_moderator=settings.max_active_per_moderator,
        claim_timeout=timedelta(seconds=settings.claim_timeout_seconds),
        auto_assign=settings.auto_assign,
    )
    # B4: bots hand users over to the support queue; what moderators say there reaches the
    # user's channel through the relay, after the commit and outside the sender's request.
    handoff = SupportHandoffDesk(db, support, messages, topic=settings.handoff_topic)
    runtime.handoff = handoff
    relay = ChannelRelay(gateway)
    messages.listen(relay.message_posted)
    support.listen(relay.support_changed)
    return AppContext(
        settings=settings,
        db=db,
        tokens=TokenSigner(settings.signing_key, timedelta(minutes=settings.token_ttl_minutes)),
        broker=broker,
        hub=Hub(broker, EventHistory(db)),
        presence=presence,
        leases=backends.leases,
        limits=backends.limits,
        typing=TypingTracker(broker, settings.typing_ttl_seconds),
        log=log,
        accounts=AccountService(db, PasswordHasher(), throttle),
        topics=TopicService(db),
        features=FeatureService(db),
        conversations=ConversationService(db, replay_cap=settings.replay_cap),
        messages=messages,
        support=support,
        http=http,
        bots=BotService(db, registry),
        bot_runtime=runtime,
        bot_chats=BotChats(db, log, idle=timedelta(minutes=settings.bot_chat_idle_minutes)),
        channels=gateway,
        whatsapp=whatsapp,
        messenger=messenger,
        handoff=handoff,
        relay=relay,
        web_chat=WebWidget(db, registry, gateway, handoff),
        sessions=SessionService(db, log),
        moderation=ModerationService(db, log),
        reactions=ReactionService(db, log, rate_limits, rule=rule(settings.session_reaction_rate)),
        hands=HandService(db, log),
        exports=ExportService(db),
        annotation=AnnotationService(db),
        labels=LabelService(db),
        agreement=AgreementService(db),
        datasets=DatasetService(db),
        privacy=PrivacyService(db, broker),
    )
