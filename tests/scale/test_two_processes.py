"""Two server processes on one PostgreSQL database and one Redis (R2).

Clients on process A and process B see each other's messages, typing and presence; a claim race
across the processes has exactly one winner; login throttling counts across both; Redis outages
delay cross-process delivery but lose nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chatforge.context import AppContext
from chatforge.store.models import Role, User
from tests.factories import make_user, with_context
from tests.realtime.client import ws_client
from tests.servers import (
    SECRET,
    LiveServer,
    RedisServer,
    chatforge_server,
    postgres_server,
    redis_server,
)

pytestmark = pytest.mark.postgres


@dataclass
class Cluster:
    a: LiveServer
    b: LiveServer
    redis: RedisServer
    database_url: str
    data_dir: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("cluster")
    with postgres_server(base / "pg") as database_url, redis_server(base) as redis:
        env = {
            "CHATFORGE_DATABASE_URL": database_url,
            "CHATFORGE_REDIS_URL": redis.url,
            "CHATFORGE_LOGIN_FAILURES_PER_USERNAME": "4",
        }
        # One after the other: the first start migrates the shared database.
        with chatforge_server(base / "a", **env) as a, chatforge_server(base / "b", **env) as b:
            yield Cluster(a, b, redis, database_url, base / "a")


@dataclass
class Cast:
    user: User
    moderator: User
    other_moderator: User
    topic_id: int
    tokens: dict[int, str]

    def auth(self, user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user.id]}"}


@pytest.fixture
def cast(cluster: Cluster) -> Cast:
    async def create(ctx: AppContext) -> Cast:
        user = await make_user(ctx, Role.user)
        moderator = await make_user(ctx, Role.moderator)
        other = await make_user(ctx, Role.moderator)
        admin = await make_user(ctx, Role.admin)
        topic = await ctx.topics.create(admin, name=f"Scale {user.username}")
        tokens = {u.id: ctx.tokens.issue(u.id, u.token_version) for u in (user, moderator, other)}
        return Cast(user, moderator, other, topic.id, tokens)

    return with_context(
        cluster.data_dir, create, secret_key=SECRET, database_url=cluster.database_url
    )


async def open_conversation(cluster: Cluster, cast: Cast) -> int:
    async with httpx.AsyncClient() as http:
        opened = await http.post(
            f"{cluster.a.url}/api/conversations",
            json={"topic_id": cast.topic_id},
            headers=cast.auth(cast.user),
        )
        assert opened.status_code == 201, opened.text
        return int(opened.json()["id"])


async def test_messages_and_typing_cross_processes(cluster: Cluster, cast: Cast) -> None:
    conversation_id = await open_conversation(cluster, cast)
    async with httpx.AsyncClient() as http:
        claimed = await http.post(
            f"{cluster.b.url}/api/conversations/{conversation_id}/claim",
            headers=cast.auth(cast.moderator),
        )
        assert claimed.status_code == 200
    async with (
        ws_client(cluster.a, cast.tokens[cast.user.id]) as user,
        ws_client(cluster.b, cast.tokens[cast.moderator.id]) as moderator,
    ):
        for client in (user, moderator):
            await client.request(
                {"type": "subscribe", "conversation_id": conversation_id}, "subscribed"
            )
        await user.request(
            {
                "type": "chat_message",
                "conversation_id": conversation_id,
                "body": "from A",
                "client_id": "a1",
            },
            "ack",
        )
        assert (await moderator.expect("chat_message"))["body"] == "from A"
        await moderator.request(
            {
                "type": "chat_message",
                "conversation_id": conversation_id,
                "body": "from B",
                "client_id": "b1",
            },
            "ack",
        )
        assert (await user.expect("chat_message", body="from B"))["sender_id"] == cast.moderator.id
        await moderator.send({"type": "typing_start", "conversation_id": conversation_id})
        assert (await user.expect("typing_start"))["user_id"] == cast.moderator.id


async def test_presence_crosses_processes(cluster: Cluster, cast: Cast) -> None:
    async with ws_client(cluster.a, cast.tokens[cast.user.id]) as user:
        async with ws_client(cluster.b, cast.tokens[cast.other_moderator.id]):
            came = await user.expect("presence")
            assert came["moderators_online"] >= 1
            async with httpx.AsyncClient() as http:
                status = await http.get(
                    f"{cluster.a.url}/api/support/status", headers=cast.auth(cast.user)
                )
                assert status.json()["moderators_online"] >= 1
        went = await user.expect("presence")
        assert went["moderators_online"] == came["moderators_online"] - 1


async def test_claim_race_across_processes_has_one_winner(cluster: Cluster, cast: Cast) -> None:
    for _ in range(5):
        conversation_id = await open_conversation(cluster, cast)
        async with httpx.AsyncClient() as http:
            results = await asyncio.gather(
                http.post(
                    f"{cluster.a.url}/api/conversations/{conversation_id}/claim",
                    headers=cast.auth(cast.moderator),
                ),
                http.post(
                    f"{cluster.b.url}/api/conversations/{conversation_id}/claim",
                    headers=cast.auth(cast.other_moderator),
                ),
            )
            assert sorted(r.status_code for r in results) == [200, 409]
            winner = next(r for r in results if r.status_code == 200).json()["assignee_id"]
            ended = await http.post(
                f"{cluster.a.url}/api/conversations/{conversation_id}/end",
                headers=cast.auth(cast.user),
            )
            assert ended.status_code == 200
            assert winner in (cast.moderator.id, cast.other_moderator.id)


async def test_login_throttle_counts_across_processes(cluster: Cluster, cast: Cast) -> None:
    # The cluster allows 4 failures per username.
    async with httpx.AsyncClient() as http:
        for server in (cluster.a, cluster.b, cluster.a, cluster.b):
            failed = await http.post(
                f"{server.url}/api/auth/token",
                json={"username": cast.user.username, "password": "wrong!"},
            )
            assert failed.status_code == 401
        for server in (cluster.a, cluster.b):
            refused = await http.post(
                f"{server.url}/api/auth/token",
                json={"username": cast.user.username, "password": "wrong!"},
            )
            assert refused.status_code == 429
            assert int(refused.headers["Retry-After"]) > 0


async def health(server: LiveServer) -> dict[str, str]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.url}/healthz")
        assert response.status_code == 200
        body: dict[str, str] = response.json()
        return body


async def wait_for_health(server: LiveServer, status: str, within: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (await health(server))["status"] != status:
        assert loop.time() < deadline, f"/healthz never said {status}"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("outage", ["stop", "freeze"])
async def test_redis_outage_delays_but_loses_nothing(
    cluster: Cluster, cast: Cast, outage: str
) -> None:
    conversation_id = await open_conversation(cluster, cast)
    async with (
        ws_client(cluster.a, cast.tokens[cast.user.id]) as sender,
        ws_client(cluster.b, cast.tokens[cast.moderator.id]) as watcher,
    ):
        await watcher.request(
            {"type": "subscribe", "conversation_id": conversation_id}, "subscribed"
        )
        await sender.request(
            {
                "type": "chat_message",
                "conversation_id": conversation_id,
                "body": "before",
                "client_id": f"{outage}-0",
            },
            "ack",
        )
        await watcher.expect("chat_message", body="before")
        if outage == "stop":
            cluster.redis.stop()
        else:
            cluster.redis.freeze()
        try:
            await wait_for_health(cluster.a, "degraded")
            # Sending keeps working: the ack comes from the database commit.
            for n in range(1, 4):
                ack = await sender.request(
                    {
                        "type": "chat_message",
                        "conversation_id": conversation_id,
                        "body": f"during {n}",
                        "client_id": f"{outage}-{n}",
                    },
                    "ack",
                )
                assert ack["seq"] > 0
        finally:
            if outage == "stop":
                cluster.redis.start()
            else:
                cluster.redis.thaw()
        # Within 5 s of Redis returning the other process has caught up, in order, no gap.
        frames = [await watcher.expect("chat_message", within=15) for _ in range(3)]
        assert [f["body"] for f in frames] == ["during 1", "during 2", "during 3"]
        await wait_for_health(cluster.a, "ok")
        await wait_for_health(cluster.b, "ok")
        await sender.request(
            {
                "type": "chat_message",
                "conversation_id": conversation_id,
                "body": "after",
                "client_id": f"{outage}-9",
            },
            "ack",
        )
        assert (await watcher.expect("chat_message", body="after"))["seq"] == frames[-1]["seq"] + 1
