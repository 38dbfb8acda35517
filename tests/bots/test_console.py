"""``chatforge bot console NAME``: a bot in the terminal, with state kept between runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from chatforge.cli import app
from tests.servers import SECRET


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATFORGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CHATFORGE_SECRET_KEY", SECRET)
    monkeypatch.setenv("CHATFORGE_BOT_MODULES", "tests.bots.sample_bots")
    monkeypatch.setenv("COLUMNS", "200")


def test_talking_to_a_bot_on_the_console_keeps_state_between_runs(env: None) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["bot", "console", "quiz", "--as", "Ada"], input="hi\nquiz\n")
    assert first.exit_code == 0, first.output
    assert "Talking to quiz as ada." in first.output
    assert "quiz> You are in the lobby." in first.output
    assert "quiz> Quiz time." in first.output

    second = runner.invoke(
        app, ["bot", "console", "quiz", "--as", "ada"], input="42\n/quit\nnever\n"
    )
    assert second.exit_code == 0, second.output
    assert "quiz> noted 42 (1 so far)" in second.output
    assert "lobby" not in second.output
    assert "never" not in second.output.split("/quit")[-1]


def test_an_unknown_bot_is_a_clear_error(env: None) -> None:
    result = CliRunner().invoke(app, ["bot", "console", "nobody"])
    assert result.exit_code == 1
    assert "No bot named 'nobody'." in result.output


def test_bot_list_shows_builtin_and_configured_bots(env: None) -> None:
    result = CliRunner().invoke(app, ["bot", "list"])
    assert result.exit_code == 0, result.output
    for name in ("challenge", "quiz", "echo"):
        assert name in result.output
