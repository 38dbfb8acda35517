"""Who may use which route: every route of the app, for anonymous visitors and every role."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from fastapi.routing import APIRoute, iter_route_contexts

from chatforge.api.deps import SESSION_COOKIE
from chatforge.store.models import Role, User
from chatforge.web.render import CSRF_COOKIE
from tests.conftest import Api
from tests.factories import PASSWORD, make_topic, unique_name

# =================================================================================================
# THE ALLOW TABLE: every route of the app, and who may use it.
#
# Adding a route? Add it here with the set of callers allowed to use it. The test fails for any
# route missing from this table, and for any entry whose route no longer exists. If the route
# needs a body or form fields to succeed, add them to REQUESTS below as well.
# =================================================================================================
ANONYMOUS = "anonymous"
USER, MODERATOR, ANNOTATOR, ADMIN = (role.value for role in Role)

EVERYONE = frozenset({ANONYMOUS, USER, MODERATOR, ANNOTATOR, ADMIN})
LOGGED_IN = frozenset({USER, MODERATOR, ANNOTATOR, ADMIN})
ADMINS = frozenset({ADMIN})
STAFF = frozenset({MODERATOR, ADMIN})
READERS = frozenset({USER, MODERATOR, ADMIN})  # the owner, the assignee, admins
SPEAKERS = frozenset({USER, MODERATOR})
INSTRUCTORS = (
    STAFF  # of the session room in question  # only the two people in the conversation write in it
)
ANNOTATORS = frozenset({ANNOTATOR, ADMIN})

ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    # -- REST API ---------------------------------------------------------------------------
    ("POST", "/api/auth/register"): EVERYONE,
    ("POST", "/api/auth/token"): EVERYONE,
    ("GET", "/api/me"): LOGGED_IN,
    ("PATCH", "/api/me"): LOGGED_IN,
    ("POST", "/api/me/password"): LOGGED_IN,
    ("GET", "/api/me/export"): LOGGED_IN,
    ("POST", "/api/users/{user_id}/erase"): ADMINS,
    ("GET", "/api/users"): ADMINS,
    ("GET", "/api/users/{user_id}"): ADMINS,
    ("PATCH", "/api/users/{user_id}"): ADMINS,
    ("POST", "/api/users/{user_id}/password"): ADMINS,
    ("GET", "/api/topics"): LOGGED_IN,
    ("POST", "/api/topics"): ADMINS,
    ("PATCH", "/api/topics/{topic_id}"): ADMINS,
    ("DELETE", "/api/topics/{topic_id}"): ADMINS,
    ("GET", "/api/features"): EVERYONE,
    ("PUT", "/api/features/{role}"): ADMINS,
    ("GET", "/api/annotation/conversations"): ANNOTATORS,
    ("GET", "/api/annotation/conversations/{conversation_id}"): ANNOTATORS,
    ("DELETE", "/api/annotation/conversations/{conversation_id}"): ANNOTATORS,
    ("POST", "/api/conversations/{conversation_id}/annotations"): ANNOTATORS,
    ("PATCH", "/api/messages/{message_id}/correction"): ANNOTATORS,
    ("PUT", "/api/messages/{message_id}/turn-rating"): ANNOTATORS,
    ("GET", "/api/annotation/labels"): ANNOTATORS,
    ("POST", "/api/annotation/labels"): ADMINS,
    ("PATCH", "/api/annotation/labels/{label_id}"): ADMINS,
    ("GET", "/api/annotation/dashboard"): ANNOTATORS,
    ("GET", "/api/datasets/export"): ANNOTATORS,
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/metrics"): EVERYONE,
    # Live sessions: the world makes a moderator or admin caller the room's instructor and
    # anyone else logged in a member of it (see World.session_room); tests/api/test_sessions.py
    # covers the room rules in depth.
    ("POST", "/api/sessions"): frozenset({MODERATOR, ADMIN}),
    ("GET", "/api/sessions/{conversation_id}"): LOGGED_IN,
    ("POST", "/api/sessions/{conversation_id}/join"): LOGGED_IN,
    ("POST", "/api/sessions/{conversation_id}/leave"): LOGGED_IN,
    ("PUT", "/api/conversations/{conversation_id}/slow-mode"): INSTRUCTORS,
    ("DELETE", "/api/conversations/{conversation_id}/messages/{message_id}"): INSTRUCTORS,
    ("POST", "/api/conversations/{conversation_id}/messages/{message_id}/reactions"): LOGGED_IN,
    ("DELETE", "/api/conversations/{conversation_id}/messages/{message_id}/reactions"): LOGGED_IN,
    ("GET", "/api/conversations/{conversation_id}/hands"): LOGGED_IN,
    ("POST", "/api/conversations/{conversation_id}/hands"): LOGGED_IN,
    ("DELETE", "/api/conversations/{conversation_id}/hands"): LOGGED_IN,
    ("POST", "/api/conversations/{conversation_id}/hands/{user_id}/acknowledge"): INSTRUCTORS,
    ("GET", "/api/conversations/{conversation_id}/mutes"): INSTRUCTORS,
    ("POST", "/api/conversations/{conversation_id}/mutes"): INSTRUCTORS,
    ("DELETE", "/api/conversations/{conversation_id}/mutes/{user_id}"): INSTRUCTORS,
    ("GET", "/api/conversations/{conversation_id}/export"): LOGGED_IN,
    # -- pages --------------------------------------------------------------------------------
    ("GET", "/"): EVERYONE,
    ("GET", "/login"): EVERYONE,
    ("POST", "/login"): EVERYONE,
    ("GET", "/register"): EVERYONE,
    ("POST", "/register"): EVERYONE,
    ("POST", "/logout"): EVERYONE,
    ("GET", "/profile"): LOGGED_IN,
    ("POST", "/profile"): LOGGED_IN,
    ("POST", "/profile/password"): LOGGED_IN,
    ("GET", "/profile/export"): LOGGED_IN,
    ("GET", "/features"): EVERYONE,
    ("GET", "/moderate"): frozenset({MODERATOR, ADMIN}),
    ("GET", "/chat"): LOGGED_IN,
    ("POST", "/chat"): LOGGED_IN,
    ("GET", "/sessions"): LOGGED_IN,
    ("POST", "/sessions"): frozenset({MODERATOR, ADMIN}),
    ("GET", "/sessions/{conversation_id}"): LOGGED_IN,
    ("POST", "/sessions/{conversation_id}/join"): LOGGED_IN,
    ("POST", "/sessions/{conversation_id}/leave"): LOGGED_IN,
    ("POST", "/sessions/{conversation_id}/messages"): LOGGED_IN,
    ("GET", "/annotate"): ANNOTATORS,
    ("GET", "/annotate/dashboard"): ANNOTATORS,
    ("GET", "/annotate/export"): ANNOTATORS,
    ("GET", "/annotate/export/download"): ANNOTATORS,
    ("GET", "/annotate/{conversation_id}"): ANNOTATORS,
    ("POST", "/annotate/{conversation_id}/annotation"): ANNOTATORS,
    ("POST", "/annotate/{conversation_id}/messages/{message_id}/correction"): ANNOTATORS,
    ("POST", "/annotate/{conversation_id}/messages/{message_id}/exclusion"): ANNOTATORS,
    ("POST", "/annotate/{conversation_id}/messages/{message_id}/verdict"): ANNOTATORS,
    ("GET", "/annotate/{conversation_id}/delete"): ANNOTATORS,
    ("POST", "/annotate/{conversation_id}/delete"): ANNOTATORS,
    ("GET", "/admin/labels"): ADMINS,
    ("POST", "/admin/labels"): ADMINS,
    ("POST", "/admin/labels/{label_id}/active"): ADMINS,
    ("GET", "/admin/topics"): ADMINS,
    ("POST", "/admin/topics"): ADMINS,
    ("GET", "/admin/topics/{topic_id}/edit"): ADMINS,
    ("POST", "/admin/topics/{topic_id}/edit"): ADMINS,
    ("POST", "/admin/topics/{topic_id}/active"): ADMINS,
    ("GET", "/admin/topics/{topic_id}/delete"): ADMINS,
    ("POST", "/admin/topics/{topic_id}/delete"): ADMINS,
    ("GET", "/admin/users"): ADMINS,
    ("GET", "/admin/users/{user_id}"): ADMINS,
    ("POST", "/admin/users/{user_id}/role"): ADMINS,
    ("POST", "/admin/users/{user_id}/active"): ADMINS,
    ("POST", "/admin/users/{user_id}/password"): ADMINS,
    ("GET", "/admin/users/{user_id}/erase"): ADMINS,
    ("POST", "/admin/users/{user_id}/erase"): ADMINS,
    ("GET", "/admin/features"): ADMINS,
    ("POST", "/admin/features"): ADMINS,
    # -- support conversations (the world makes a user caller the owner and a moderator caller
    # the assignee of the conversation a route names; see World.conversation) ---------------
    ("GET", "/api/support/status"): LOGGED_IN,
    ("GET", "/api/conversations"): LOGGED_IN,
    ("POST", "/api/conversations"): LOGGED_IN,
    ("GET", "/api/conversations/{conversation_id}"): READERS,
    ("GET", "/api/conversations/{conversation_id}/events"): READERS,
    ("GET", "/api/conversations/{conversation_id}/messages"): READERS,
    ("GET", "/api/conversations/{conversation_id}/queue"): frozenset({USER}),
    ("POST", "/api/conversations/{conversation_id}/claim"): STAFF,
    ("POST", "/api/conversations/{conversation_id}/end"): READERS,
    ("POST", "/api/conversations/{conversation_id}/messages"): SPEAKERS,
    ("POST", "/api/conversations/{conversation_id}/rating"): frozenset({USER}),
    ("POST", "/api/conversations/{conversation_id}/transfer"): STAFF,
    ("GET", "/support"): LOGGED_IN,
    ("POST", "/support/start"): LOGGED_IN,
    ("GET", "/support/conversations/{conversation_id}"): READERS,
    ("POST", "/support/conversations/{conversation_id}/messages"): SPEAKERS,
    ("POST", "/support/conversations/{conversation_id}/end"): READERS,
    ("POST", "/support/conversations/{conversation_id}/rating"): frozenset({USER}),
    ("POST", "/support/conversations/{conversation_id}/transfer"): STAFF,
    ("POST", "/moderate/{conversation_id}/claim"): STAFF,
    # -- bots ---------------------------------------------------------------------------------
    ("GET", "/api/bots"): LOGGED_IN,
    ("GET", "/api/bots/{name}/analytics"): STAFF,
    ("GET", "/bots"): STAFF,
    ("GET", "/bots/{name}"): STAFF,
}

# Routes that are not chatforge's own: the static files and FastAPI's API documentation.
NOT_CHECKED = frozenset(
    {
        "static",
        "openapi",
        "swagger_ui_html",
        "swagger_ui_redirect",
        "redoc_html",
        # Channel webhooks answer to the platform's signature, not to a user: tests/channels/
        # sends them signed, unsigned and wrongly signed.
        "twilio_whatsapp",
        "messenger_verify",
        "messenger_events",
    }
)


@dataclass
class World:
    """The records the requests point at, and one account per role."""

    api: Api
    target: User  # the user that {user_id} names: never the caller
    helper: User  # a moderator who is never the caller
    actors: dict[str, User] = field(default_factory=dict)

    def username(self, who: str) -> str:
        return (self.actors.get(who) or self.target).username

    def new_topic_id(self) -> int:
        return self.api.call(make_topic, self.api.ctx, self.actors[ADMIN], None, "").id

    def transfer_target(self, who: str) -> User:
        """Someone other than whoever holds the conversation the caller transfers."""
        return self.helper if who == MODERATOR else self.actors[MODERATOR]

    def new_label_id(self) -> int:
        label = self.api.call(self.api.ctx.labels.create, self.actors[ADMIN], unique_name("label"))
        return label.id

    def finished_conversation(self) -> tuple[int, int]:
        """A support conversation that has ended: (its id, the id of the moderator's answer)."""
        api, ctx = self.api, self.api.ctx
        owner = api.user()
        conversation_id = api.call(ctx.support.open, owner, self.new_topic_id()).conversation.id
        api.call(ctx.support.claim, self.helper, conversation_id)
        api.call(ctx.messages.post, owner, conversation_id, "How do I rebase?")
        answer = api.call(ctx.messages.post, self.helper, conversation_id, "git rebase -i")
        api.call(ctx.support.end, owner, conversation_id)
        return conversation_id, answer.message_id

    def session_room(self, who: str) -> tuple[int, int]:
        """A fresh live session and a message in it: (conversation id, message id).

        A moderator or admin caller is its instructor; anyone else logged in has joined it.
        """
        api, ctx = self.api, self.api.ctx
        caller = self.actors.get(who)
        instructor = caller if who in STAFF and caller else self.helper
        room = api.call(ctx.sessions.create, instructor, "Matrix room", None).id
        api.call(ctx.sessions.join, self.target, room)
        if caller is not None and caller is not instructor:
            api.call(ctx.sessions.join, caller, room)
        posted = api.call(ctx.messages.post, self.target, room, "hello room")
        # The target has a hand up and is muted, so acknowledging and unmuting have work to do.
        api.call(ctx.hands.raise_hand, self.target, room)
        api.call(
            functools.partial(ctx.moderation.mute, duration_minutes=60, reason="matrix"),
            instructor,
            room,
            self.target.id,
        )
        return room, posted.message_id

    def conversation(self, method: str, template: str, who: str) -> int:
        """A fresh support conversation in the state the route needs.

        A user caller owns it; a moderator caller holds it (when it is claimed). Everyone else
        finds it owned by a stranger and held by another moderator.
        """
        api, ctx = self.api, self.api.ctx
        caller = self.actors.get(who)
        owner = caller if who == USER and caller else api.user()
        if who == USER and caller is not None:
            # One open conversation per user: finish the caller's previous one first.
            for view in api.call(ctx.conversations.visible, caller):
                if view.kind.value == "support" and view.status.value in {"pending", "active"}:
                    api.call(ctx.support.end, caller, view.id)
        topic = self.new_topic_id()
        conversation_id = api.call(ctx.support.open, owner, topic).conversation.id
        if template.endswith(("/claim", "/queue")):
            return conversation_id
        moderator = caller if who == MODERATOR and caller else self.helper
        api.call(ctx.support.claim, moderator, conversation_id)
        if template.endswith("/rating"):
            api.call(ctx.support.end, owner, conversation_id)
        return conversation_id


Fields = Callable[[World, str], dict[str, str]]

# Bodies (API, JSON) and form fields (pages) that make an allowed call succeed. None of them
# ends the caller's session, so one account per role serves every route.
REQUESTS: dict[tuple[str, str], Fields] = {
    ("POST", "/api/auth/register"): lambda w, who: {
        "username": unique_name("reg"),
        "password": PASSWORD,
    },
    ("POST", "/api/auth/token"): lambda w, who: {"username": w.username(who), "password": PASSWORD},
    ("PATCH", "/api/me"): lambda w, who: {"display_name": "Matrix"},
    ("POST", "/api/me/password"): lambda w, who: {
        "current_password": PASSWORD,
        "new_password": PASSWORD,
    },
    ("PATCH", "/api/users/{user_id}"): lambda w, who: {"role": "moderator"},
    ("POST", "/api/users/{user_id}/password"): lambda w, who: {"password": PASSWORD},
    ("POST", "/api/topics"): lambda w, who: {"name": unique_name("Topic ")},
    ("PATCH", "/api/topics/{topic_id}"): lambda w, who: {"description": "changed"},
    ("PUT", "/api/features/{role}"): lambda w, who: {"body": "What users do."},
    ("POST", "/login"): lambda w, who: {"username": w.username(who), "password": PASSWORD},
    ("POST", "/register"): lambda w, who: {"username": unique_name("reg"), "password": PASSWORD},
    ("POST", "/profile"): lambda w, who: {"display_name": "Matrix"},
    ("POST", "/chat"): lambda w, who: {"body": "help"},
    ("POST", "/profile/password"): lambda w, who: {
        "current_password": PASSWORD,
        "new_password": PASSWORD,
    },
    ("POST", "/admin/topics"): lambda w, who: {"name": unique_name("Topic ")},
    ("POST", "/admin/topics/{topic_id}/edit"): lambda w, who: {"name": unique_name("Topic ")},
    ("POST", "/admin/topics/{topic_id}/active"): lambda w, who: {"active": "false"},
    ("POST", "/admin/users/{user_id}/role"): lambda w, who: {"role": "moderator"},
    ("POST", "/admin/users/{user_id}/active"): lambda w, who: {"active": "true"},
    ("POST", "/api/conversations"): lambda w, who: {"topic_id": str(w.new_topic_id())},
    ("POST", "/api/conversations/{conversation_id}/messages"): lambda w, who: {"body": "hi"},
    ("POST", "/api/conversations/{conversation_id}/rating"): lambda w, who: {"rating": "poor"},
    ("POST", "/api/conversations/{conversation_id}/transfer"): lambda w, who: {
        "moderator_id": str(w.transfer_target(who).id)
    },
    ("POST", "/support/start"): lambda w, who: {"topic_id": str(w.new_topic_id())},
    ("POST", "/api/sessions"): lambda w, who: {"title": "Matrix class"},
    ("POST", "/sessions"): lambda w, who: {"title": "Matrix class"},
    ("PUT", "/api/conversations/{conversation_id}/slow-mode"): lambda w, who: {"seconds": 5},
    ("POST", "/api/conversations/{conversation_id}/messages/{message_id}/reactions"): (
        lambda w, who: {"emoji": "👍"}
    ),
    ("DELETE", "/api/conversations/{conversation_id}/messages/{message_id}/reactions"): (
        lambda w, who: {"emoji": "👍"}
    ),
    ("POST", "/api/conversations/{conversation_id}/mutes"): lambda w, who: {
        "user_id": w.target.id,
        "duration_minutes": 5,
    },
    ("POST", "/sessions/{conversation_id}/messages"): lambda w, who: {"body": "hi room"},
    ("POST", "/support/conversations/{conversation_id}/messages"): lambda w, who: {"body": "hi"},
    ("POST", "/support/conversations/{conversation_id}/rating"): lambda w, who: {"rating": "poor"},
    ("POST", "/support/conversations/{conversation_id}/transfer"): lambda w, who: {
        "moderator_id": str(w.transfer_target(who).id)
    },
    ("POST", "/admin/users/{user_id}/password"): lambda w, who: {"password": PASSWORD},
    ("POST", "/admin/features"): lambda w, who: {"text_user": "What users do."},
    ("POST", "/api/conversations/{conversation_id}/annotations"): lambda w, who: {
        "rating": "excellent"
    },
    ("PATCH", "/api/messages/{message_id}/correction"): lambda w, who: {"excluded": True},
    ("PUT", "/api/messages/{message_id}/turn-rating"): lambda w, who: {"verdict": "good"},
    ("POST", "/api/annotation/labels"): lambda w, who: {"name": unique_name("label")},
    ("PATCH", "/api/annotation/labels/{label_id}"): lambda w, who: {"active": False},
    ("POST", "/annotate/{conversation_id}/annotation"): lambda w, who: {"rating": "poor"},
    ("POST", "/annotate/{conversation_id}/messages/{message_id}/correction"): lambda w, who: {
        "text": "corrected"
    },
    ("POST", "/annotate/{conversation_id}/messages/{message_id}/exclusion"): lambda w, who: {
        "excluded": "true"
    },
    ("POST", "/annotate/{conversation_id}/messages/{message_id}/verdict"): lambda w, who: {
        "verdict": "bad"
    },
    ("POST", "/admin/labels"): lambda w, who: {"name": unique_name("label")},
    ("POST", "/admin/labels/{label_id}/active"): lambda w, who: {"active": "false"},
}


SESSION_ACTIONS = ("/slow-mode", "/messages/{message_id}", "/hands", "/mutes", "/export")


def is_session_route(template: str) -> bool:
    """Routes about a live session room (some share the /api/conversations prefix)."""
    return "/sessions/" in template or any(action in template for action in SESSION_ACTIONS)


def is_api(path: str) -> bool:
    return path.startswith("/api/") or path in {"/healthz", "/metrics"}


def app_routes(api: Api) -> set[tuple[str, str]]:
    """(method, path template) of every route, with the included routers flattened."""
    routes: set[tuple[str, str]] = set()
    for context in iter_route_contexts(api.client.app.routes):  # type: ignore[attr-defined]
        route = context.original_route
        if getattr(route, "name", None) in NOT_CHECKED:
            continue
        assert isinstance(route, APIRoute), (
            f"{route!r} is not an APIRoute: teach tests/test_authorization.py to check it"
        )
        assert context.path is not None
        routes.update((method, context.path) for method in route.methods)
    return routes


def call(
    api: Api, world: World, csrf: tuple[str, str], method: str, template: str, who: str
) -> httpx.Response:
    path = template
    if "{topic_id}" in path:
        path = path.replace("{topic_id}", str(world.new_topic_id()))
    if "{label_id}" in path:
        path = path.replace("{label_id}", str(world.new_label_id()))
    if "annotat" in template or template.startswith("/api/messages/"):
        finished, answer = world.finished_conversation()
        path = path.replace("{conversation_id}", str(finished))
        path = path.replace("{message_id}", str(answer))
    elif "{conversation_id}" in path and is_session_route(template):
        room, message = world.session_room(who)
        path = path.replace("{conversation_id}", str(room)).replace("{message_id}", str(message))
    elif "{conversation_id}" in path:
        path = path.replace("{conversation_id}", str(world.conversation(method, template, who)))
    if template.endswith("/erase"):
        # Erasure is for good: each call erases someone of its own, not the shared target.
        path = path.replace("{user_id}", str(api.user().id))
    path = path.replace("{user_id}", str(world.target.id)).replace("{role}", "user")
    path = path.replace("{name}", "challenge")
    fields = REQUESTS.get((method, template), lambda w, who: {})(world, who)
    token = None
    if who != ANONYMOUS:
        actor = api.fresh(world.actors[who])
        token = api.ctx.tokens.issue(actor.id, actor.token_version)

    api.client.cookies.clear()
    if is_api(template):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if method in {"GET", "DELETE"}:
            return api.client.request(method, path, params=fields, headers=headers)
        return api.client.request(method, path, json=fields, headers=headers)
    raw_csrf, csrf_field = csrf
    api.client.cookies.set(CSRF_COOKIE, raw_csrf)
    if token:
        api.client.cookies.set(SESSION_COOKIE, token)
    if method == "GET":
        return api.client.get(path, follow_redirects=False)
    return api.client.post(path, data={**fields, "csrf_token": csrf_field}, follow_redirects=False)


def outcome(template: str, response: httpx.Response) -> str:
    """``allowed``, ``denied`` (the refusal the caller should get), or what went wrong."""
    status = response.status_code
    location = response.headers.get("location", "")
    if is_api(template):
        if status in {401, 403}:
            assert set(response.json()) == {"detail", "code"}
            return f"denied {status}"
    elif status == 303 and location.startswith("/login?next="):
        return "denied login"
    elif status == 403:
        assert response.headers["content-type"].startswith("text/html")
        return "denied 403"
    return "allowed" if status < 400 else f"failed {status}: {response.text[:200]}"


def expected_refusal(template: str, who: str) -> str:
    if who == ANONYMOUS:
        return "denied 401" if is_api(template) else "denied login"
    return "denied 403"


def test_every_route_admits_exactly_the_callers_in_the_allow_table(api: Api) -> None:
    routes = app_routes(api)
    missing = sorted(routes - ALLOWED.keys())
    stale = sorted(ALLOWED.keys() - routes)
    assert not missing, f"routes missing from the allow table in {__file__}: {missing}"
    assert not stale, f"allow table entries for routes that do not exist: {stale}"
    assert REQUESTS.keys() <= ALLOWED.keys()

    world = World(api, target=api.user(), helper=api.user(Role.moderator))
    api.ctx.support.max_active = 10_000  # moderators hold many conversations in this test
    for role in Role:
        world.actors[role.value] = api.user(role)
    api.client.cookies.clear()
    csrf_field = api.csrf()
    csrf = (api.client.cookies[CSRF_COOKIE], csrf_field)

    wrong: list[str] = []
    for method, template in sorted(routes):
        allowed = ALLOWED[(method, template)]
        for who in sorted(EVERYONE):
            response = call(api, world, csrf, method, template, who)
            got = outcome(template, response)
            want = "allowed" if who in allowed else expected_refusal(template, who)
            if got != want:
                wrong.append(f"{method} {template} as {who}: want {want}, got {got}")

    assert not wrong, "\n".join(wrong)
