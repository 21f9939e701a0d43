"""``signatureversion=3`` expiry: past expiry within the skew allowance, and at most a day ahead."""
from datetime import datetime, timedelta, timezone

import pytest

from api import signing
from api.auth import CLOCK_SKEW, MAX_EXPIRES_AHEAD, check_expires
from orchestrator.errors import Unauthenticated

NOW = datetime(2026, 11, 25, 19, 0, tzinfo=timezone.utc)


def v3(expires):
    return {"signatureversion": "3", "expires": expires}


def at(delta):
    return (NOW + delta).strftime("%Y-%m-%dT%H:%M:%S%z")


@pytest.mark.parametrize("delta", [timedelta(minutes=10), timedelta(0), -CLOCK_SKEW, MAX_EXPIRES_AHEAD + CLOCK_SKEW])
def test_an_expires_inside_the_allowed_window_is_accepted(delta):
    check_expires(v3(at(delta)), NOW)


@pytest.mark.parametrize("expires", [
    at(-CLOCK_SKEW - timedelta(seconds=1)),
    at(MAX_EXPIRES_AHEAD + CLOCK_SKEW + timedelta(seconds=1)),
    at(timedelta(days=3650)),
    "", "tomorrow", "2026-13-01T00:00:00+0000", "9999-12-31T23:59:59-2359", "0001-01-01T00:00:00+2359",
])
def test_an_expires_outside_the_window_or_unreadable_is_refused(expires):
    with pytest.raises(Unauthenticated):
        check_expires(v3(expires), NOW)


def test_without_version_3_expires_is_not_checked_as_in_cloudstack():
    check_expires({"expires": "2001-01-01T00:00:00+0000"}, NOW)
    check_expires({"signatureversion": "2"}, NOW)


def test_dates_at_the_edge_of_the_calendar_do_not_overflow():
    assert signing.parse_expires("9999-12-31T23:59:59-2359") is None
    assert signing.parse_expires("x" * 10_000) is None
