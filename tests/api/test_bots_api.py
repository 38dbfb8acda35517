"""``/api/bots`` and the bots pages (B5, B6): who may see what, and the numbers."""

from __future__ import annotations

from datetime import timedelta

from chatforge.channels.identity import user_for_identity
from chatforge.store.models import Role
from tests.clock import ManualClock
from tests.conftest import Api


def talk(api: Api, clock: ManualClock, who: str, *texts: str) -> None:
    """``who`` sends ``texts`` to the challenge bot over the console channel."""

    async def run() -> None:
        ctx = api.ctx
        ctx.bot_runtime.clock = clock
        async with ctx.db.write() as session:
            user = await user_for_identity(session, "console", who)
        bot = ctx.bot_runtime.registry.get("challenge")
        for text in texts:
            await ctx.bot_runtime.converse(bot, user, "console", text)

    api.client.portal.call(run)  # type: ignore[union-attr]


def test_signed_in_users_list_the_bots_with_their_channels(api: Api) -> None:
    response = api.client.get("/api/bots", headers=api.auth(api.user()))
    assert response.status_code == 200
    [challenge] = response.json()
    assert challenge["name"] == "challenge"
    assert challenge["channels"] == ["messenger", "web", "whatsapp"]
    assert challenge["states"] == ["menu"]
    assert (challenge["quota_limit"], challenge["quota_window_hours"]) == (5, 24.0)
    assert api.client.get("/api/bots").status_code == 401


def test_analytics_count_keywords_days_refusals_and_users(api: Api) -> None:
    clock = ManualClock()
    api.ctx.bots.clock = clock
    day_one = clock.now.date().isoformat()
    talk(api, clock, "ada", "python easy", "python easy", "help", "sql hard")
    talk(api, clock, "bob", "python easy", "nonsense", "mentor")
    clock.advance(hours=16)  # past midnight, inside ada's 24 h window
    talk(api, clock, "ada", "python easy", "stats medium", "python easy")  # the last is refused
    day_two = clock.now.date().isoformat()
    assert day_two != day_one

    response = api.client.get(
        "/api/bots/challenge/analytics",
        params={"days": 30},
        headers=api.auth(api.user(Role.moderator)),
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["requests"] == 10
    assert data["counted"] == 6
    assert data["unique_users"] == 2
    assert data["quota_refusals"] == 1
    assert data["handoffs"] == 1
    assert data["errors"] == 0
    keywords = {k["keyword"]: (k["requests"], k["counted"]) for k in data["by_keyword"]}
    assert keywords == {
        "python easy": (5, 4),
        "sql hard": (1, 1),
        "stats medium": (1, 1),
        "help": (1, 0),
        "nonsense": (1, 0),
        "mentor": (1, 0),
    }
    assert data["by_keyword"][0]["keyword"] == "python easy"
    assert [(d["day"], d["requests"], d["counted"], d["refusals"]) for d in data["by_day"]] == [
        (day_one, 7, 4, 0),
        (day_two, 3, 2, 1),
    ]
    assert data["by_outcome"] == {
        "challenge": 6,
        "refused": 1,
        "help": 1,
        "unknown": 1,
        "handoff": 1,
    }
    # A period that starts after the first day sees only the second.
    clock.advance(days=10, hours=-1)
    narrow = api.client.get(
        "/api/bots/challenge/analytics",
        params={"days": 10},
        headers=api.auth(api.user(Role.admin)),
    ).json()
    assert (narrow["requests"], narrow["unique_users"]) == (3, 1)


def test_analytics_are_for_moderators_and_admins(api: Api) -> None:
    path = "/api/bots/challenge/analytics"
    assert api.client.get(path, headers=api.auth(api.user(Role.user))).status_code == 403
    assert api.client.get(path, headers=api.auth(api.user(Role.annotator))).status_code == 403
    assert api.client.get(path, headers=api.auth(api.user(Role.admin))).status_code == 200
    assert api.client.get(path).status_code == 401


def test_analytics_of_an_unknown_bot_or_period_are_precise_errors(api: Api) -> None:
    headers = api.auth(api.user(Role.moderator))
    missing = api.client.get("/api/bots/nobody/analytics", headers=headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "bot_not_found")
    assert api.client.get("/api/bots/bad name!/analytics", headers=headers).status_code == 422
    for days in ("0", "367", "many"):
        response = api.client.get(
            "/api/bots/challenge/analytics", params={"days": days}, headers=headers
        )
        assert response.status_code == 422


def test_the_bots_pages_show_analytics_to_moderators_only(api: Api) -> None:
    clock = ManualClock()
    api.ctx.bots.clock = clock
    talk(api, clock, "ada", "python easy")
    moderator = api.user(Role.moderator)
    api.client.cookies.set("cf_session", api.token(moderator))
    listing = api.client.get("/bots")
    assert listing.status_code == 200
    assert 'data-bot="challenge"' in listing.text
    assert 'href="/bots"' in listing.text  # in the navigation
    page = api.client.get("/bots/challenge", params={"days": 7})
    assert page.status_code == 200
    assert "challenge: the last 7 days" in page.text
    assert '<dd data-stat="requests">1</dd>' in page.text
    assert "<td>python easy</td><td>1</td><td>1</td>" in page.text
    user = api.user(Role.user)
    api.client.cookies.set("cf_session", api.token(user))
    assert api.client.get("/bots").status_code == 403
    assert api.client.get("/bots/challenge").status_code == 403
    assert 'href="/bots"' not in api.client.get("/profile").text


def test_counting_uses_the_rolling_window_not_the_calendar_day(api: Api) -> None:
    clock = ManualClock()
    clock.now = clock.now.replace(hour=23)
    talk(api, clock, "ada", *["sql easy"] * 5)
    clock.advance(hours=2)  # a new calendar day, same 24 h window
    talk(api, clock, "ada", "sql easy")
    clock.advance(hours=22)  # the first five are 24 h old now
    talk(api, clock, "ada", "sql easy")

    moderator = api.user(Role.moderator)

    async def counts() -> tuple[int, int]:
        result = await api.ctx.bots.analytics(
            moderator, "challenge", days=3, now=clock.now + timedelta(seconds=1)
        )
        return result.counted, result.quota_refusals

    assert api.client.portal.call(counts) == (6, 1)  # type: ignore[union-attr]
