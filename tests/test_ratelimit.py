"""Retry-After, as HTTP 429 answers carry it: delay seconds or an HTTP date (each of HTTP's three forms), at most
an hour, a minute when missing or unreadable; and the holds it sets, on the monotonic clock. The sources and
peers that honour it are tested in tests/faults/ (test_gateways.py, test_peer_http.py)."""

from __future__ import annotations

import pytest

from nutbridge.ratelimit import DEFAULT_WAIT, MAX_WAIT, RateLimits, retry_after, shown

NOW = 1_800_000_000.0  # Fri, 15 Jan 2027 08:00:00 GMT


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("86400", MAX_WAIT),  # a day: an hour at most
        ("9" * 400, MAX_WAIT),  # no overflow
        ("Fri, 15 Jan 2027 08:50:00 GMT", 3000.0),  # IMF-fixdate
        ("Friday, 15-Jan-27 08:50:00 GMT", 3000.0),  # RFC 850, obsolete but allowed
        ("Fri Jan 15 08:50:00 2027", 3000.0),  # asctime: GMT
        ("Fri, 15 Jan 2027 07:59:30 GMT", 0.0),  # gone by: ask now
        ("Sat, 15 Jan 2028 08:00:00 GMT", MAX_WAIT),
        (None, DEFAULT_WAIT),
        ("", DEFAULT_WAIT),
        ("-5", DEFAULT_WAIT),
        ("1.5", DEFAULT_WAIT),  # delay-seconds are whole digits
        ("²", DEFAULT_WAIT),  # a digit to str.isdigit, not to HTTP
        ("soon", DEFAULT_WAIT),
        ("Fri, 99 Foo 2027 08:00:00 GMT", DEFAULT_WAIT),
    ],
)
def test_retry_after(header: str | None, wait: float) -> None:
    assert retry_after(header, now=NOW) == wait


def test_a_hold_lasts_its_wait_on_its_own_clock_per_key() -> None:
    now = [100.0]
    limits = RateLimits(lambda: now[0])
    assert limits.remaining("a") == 0
    assert limits.limit("a", "30") == 30
    assert limits.limit("b", None) == DEFAULT_WAIT
    now[0] += 29.5
    assert limits.remaining("a") == pytest.approx(0.5) and limits.remaining("b") == pytest.approx(30.5)
    assert shown(limits.remaining("a")) == "1 s"  # rounded up: never "0 s" while still waiting
    now[0] += 0.5
    assert limits.remaining("a") == 0 and limits.remaining("b") > 0
