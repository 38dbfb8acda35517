"""The rolling quota: pure arithmetic over the times of counted requests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chatforge.bots.quota import RollingQuota

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
DAY = RollingQuota(5, timedelta(hours=24))


def test_under_the_limit_is_allowed_with_what_remains() -> None:
    status = DAY.status([T0, T0 + timedelta(hours=1)], T0 + timedelta(hours=2))
    assert (status.allowed, status.used, status.remaining) == (True, 2, 3)
    assert status.next_available_at is None


def test_at_the_limit_the_next_request_is_possible_when_the_oldest_leaves() -> None:
    times = [T0 + timedelta(hours=h) for h in (0, 1, 2, 3, 4)]
    status = DAY.status(times, T0 + timedelta(hours=5))
    assert not status.allowed
    assert status.next_available_at == T0 + timedelta(hours=24)


def test_the_window_rolls_exactly_24_hours() -> None:
    times = [T0 + timedelta(hours=h) for h in (0, 1, 2, 3, 4)]
    assert not DAY.status(times, T0 + timedelta(hours=24) - timedelta(microseconds=1)).allowed
    assert DAY.status(times, T0 + timedelta(hours=24)).allowed


def test_over_the_limit_waits_for_enough_requests_to_leave() -> None:
    # Seven counted (e.g. the limit was lowered): three must leave before one more is allowed.
    times = [T0 + timedelta(hours=h) for h in range(7)]
    status = DAY.status(times, T0 + timedelta(hours=8))
    assert status.used == 7
    assert status.next_available_at == T0 + timedelta(hours=2 + 24)


def test_requests_in_the_future_or_before_the_window_do_not_count() -> None:
    now = T0 + timedelta(days=2)
    status = DAY.status([T0, now + timedelta(seconds=1)], now)
    assert status.used == 0


@pytest.mark.parametrize(("limit", "window"), [(0, timedelta(hours=1)), (1, timedelta(0))])
def test_a_quota_needs_a_positive_limit_and_window(limit: int, window: timedelta) -> None:
    with pytest.raises(ValueError):
        RollingQuota(limit, window)
