"""A real ``chatforge serve`` process: signed webhooks over the network, and an idle timeout
that falls due while the server is down and is delivered through Twilio after the restart."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlencode

import httpx

from tests.platforms import (
    TWILIO_TOKEN,
    FakePlatform,
    fake_platform,
    platform_env,
    twilio_signature,
    whatsapp_form,
)
from tests.servers import LiveServer, chatforge_server

ROOT = Path(__file__).resolve().parents[2]
PATH = "/channels/twilio/whatsapp"


def server_env(platform: FakePlatform) -> dict[str, str]:
    env = {f"CHATFORGE_{k.upper()}": v for k, v in platform_env(platform.url).items()}
    env.update(
        CHATFORGE_BOT_MODULES="tests.bots.sample_bots",
        CHATFORGE_CHANNEL_BOTS="whatsapp=echo",
        CHATFORGE_BOT_TIMEOUT_SWEEP_SECONDS="0.2",
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    )
    return env


def send(server: LiveServer, form: dict[str, str]) -> list[str]:
    url = server.url + PATH
    response = httpx.post(
        url,
        content=urlencode(form),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url, form),
        },
    )
    assert response.status_code == 200, response.text
    return [node.text or "" for node in ET.fromstring(response.text).findall("Message")]


def test_an_idle_timeout_survives_a_restart(tmp_path: Path) -> None:
    with fake_platform() as platform:
        env = server_env(platform)
        with chatforge_server(tmp_path / "data", **env) as server:
            form = whatsapp_form("hello", sender="+15551230001")
            assert send(server, form) == ["I am awake.", "echo: hello"]
            assert send(server, form) == []  # Twilio's retry of the same MessageSid
            assert send(server, whatsapp_form("nap", sender="+15551230001")) == [
                "Napping for 3 seconds."
            ]
        assert platform.requests == []
        with chatforge_server(tmp_path / "data", **env) as server:
            [woken] = platform.wait_for(1, timeout=15)
            assert woken.form()["To"] == "whatsapp:+15551230001"
            assert woken.form()["Body"] == "I am awake."
            assert send(server, whatsapp_form("still here?", sender="+15551230001")) == [
                "echo: still here?"
            ]


def test_the_access_log_is_on_unless_turned_off(tmp_path: Path) -> None:
    with fake_platform() as platform:
        env = server_env(platform)
        with chatforge_server(tmp_path / "logged", **env) as server:
            assert send(server, whatsapp_form("hello", sender="+15551230002"))
            assert f"POST {PATH} HTTP/1.1" in server.log.read_text()
        with chatforge_server(tmp_path / "quiet", **env, CHATFORGE_ACCESS_LOG="false") as server:
            assert send(server, whatsapp_form("hello", sender="+15551230003"))
            log = server.log.read_text()
            assert "Application startup complete" in log  # the server's own log still runs
            assert PATH not in log
