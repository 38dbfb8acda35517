"""Hand-off to a human (B4) through the real webhook endpoints, signed as the platforms sign:
``mentor`` opens a pending conversation, later messages reach the moderator instead of the bot,
and the moderator's replies go out through Twilio's Messages API and Facebook's Send API."""

from __future__ import annotations

from typing import Any

from chatforge.store.models import Role
from tests.channels.test_facebook_messenger import post as post_messenger
from tests.channels.test_twilio_whatsapp import messages as twiml_messages
from tests.channels.test_twilio_whatsapp import post as post_whatsapp
from tests.conftest import Api
from tests.platforms import TWILIO_FROM, TWILIO_SID, FakePlatform, messenger_event, whatsapp_form

NUMBER = "+27829990001"
PSID = "7001002003004005"


def support_conversations(api: Api, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = api.client.get("/api/conversations?kind=support", headers=headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def bodies(api: Api, conversation_id: int, headers: dict[str, str]) -> list[str]:
    response = api.client.get(f"/api/conversations/{conversation_id}/messages", headers=headers)
    assert response.status_code == 200, response.text
    return [m["body"] for m in response.json()]


def test_whatsapp_mentor_reaches_a_moderator_and_their_reply_goes_out_through_twilio(
    api: Api, platform: FakePlatform
) -> None:
    moderator = api.user(Role.moderator)
    staff = api.auth(moderator)

    replies = twiml_messages(post_whatsapp(api, whatsapp_form("mentor", sender=NUMBER)))
    assert replies == [
        "Hi! I send practice challenges in programming, SQL and statistics.",
        "A mentor will answer you here shortly; you are number 1 in the queue.",
    ]
    [conversation] = support_conversations(api, staff)
    assert (conversation["status"], conversation["channel"]) == ("pending", "whatsapp")
    conversation_id = conversation["id"]

    # Not the bot's any more: no TwiML answer, and the text waits for the moderator.
    assert twiml_messages(post_whatsapp(api, whatsapp_form("python easy", sender=NUMBER))) == []
    assert bodies(api, conversation_id, staff) == ["python easy"]

    claim = api.client.post(f"/api/conversations/{conversation_id}/claim", headers=staff)
    assert claim.status_code == 200, claim.text
    sent = api.client.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"body": "Try a list comprehension.", "client_id": "m-1"},
        headers=staff,
    )
    assert sent.status_code == 201, sent.text

    joined, reply = platform.wait_for(2)
    assert joined.path == reply.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert reply.form() == {
        "To": f"whatsapp:{NUMBER}",
        "From": TWILIO_FROM,
        "Body": f"{moderator.display_name}: Try a list comprehension.",
    }
    assert joined.form()["Body"].startswith(f"{moderator.display_name} is here to help you")

    ended = api.client.post(f"/api/conversations/{conversation_id}/end", headers=staff)
    assert ended.status_code == 200, ended.text
    assert "talking to the bot again" in platform.wait_for(3)[2].form()["Body"]
    answer = twiml_messages(post_whatsapp(api, whatsapp_form("help", sender=NUMBER)))
    assert answer and answer[0].startswith("Send a category and a level")
    assert bodies(api, conversation_id, staff) == ["python easy", "Try a list comprehension."]


def test_messenger_handoff_is_answered_through_the_send_api(
    api: Api, platform: FakePlatform
) -> None:
    moderator = api.user(Role.moderator)
    staff = api.auth(moderator)

    assert post_messenger(api, messenger_event("human", sender=PSID)).status_code == 200
    welcome, notice = platform.wait_for(2)
    assert notice.json()["message"]["text"].startswith("A mentor will answer you here shortly")
    [conversation] = support_conversations(api, staff)
    assert conversation["channel"] == "messenger"

    assert post_messenger(api, messenger_event("I am stuck", sender=PSID)).status_code == 200
    assert bodies(api, conversation["id"], staff) == ["I am stuck"]
    api.client.post(f"/api/conversations/{conversation['id']}/claim", headers=staff)
    api.client.post(
        f"/api/conversations/{conversation['id']}/messages",
        json={"body": "Where exactly?"},
        headers=staff,
    )

    reply = platform.wait_for(4)[3]
    assert reply.path == "/v19.0/me/messages"
    assert reply.json()["recipient"] == {"id": PSID}
    assert reply.json()["message"]["text"] == f"{moderator.display_name}: Where exactly?"
    assert len(platform.requests) == 4  # the user's own message was not echoed back
    assert welcome.json()["message"]["text"].startswith("Hi!")
