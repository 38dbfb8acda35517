"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

from pathlib import Path

from chatforge.store.database import Database
from tests.conftest import Api


def test_healthz_reports_the_database(api: Api) -> None:
    response = api.client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_is_503_when_the_database_is_gone(api: Api, tmp_path: Path) -> None:
    working = api.ctx.db
    api.ctx.db = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'chatforge.db'}")
    try:
        response = api.client.get("/healthz")
    finally:
        api.call(api.ctx.db.dispose)
        api.ctx.db = working

    assert response.status_code == 503
    assert response.json() == {"status": "down", "database": "unreachable"}
    assert api.client.get("/healthz").status_code == 200


def test_metrics_count_responses_in_prometheus_format(api: Api) -> None:
    def count(status: str) -> float:
        text = api.client.get("/metrics").text
        prefix = f'chatforge_http_responses_total{{method="GET",status="{status}"}} '
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(lines[0].removeprefix(prefix)) if lines else 0.0

    before = count("404")
    api.client.get("/no/such/page")
    api.client.get("/api/no-such-endpoint")
    after = count("404")

    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE chatforge_http_responses_total counter" in response.text
    assert after == before + 2
