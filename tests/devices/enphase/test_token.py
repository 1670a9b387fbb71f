"""The Envoy token cache against a real HTTPS server on loopback that plays Enlighten (login) and Entrez (tokens).

The server has a self-signed certificate made by openssl; the cache trusts it through ``verify``. Time is an
injected clock, so expiry, clock skew and the backoff between calls are tested without waiting."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import logging
import os
import socket
import ssl
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web

from nutbridge.devices.enphase.token import INVALID_JWT, TokenCache, TokenError, expiry
from nutbridge.errors import SourceError
from nutbridge.server.app import tls_context
from tests.helpers import GUARD
from tests.helpers.envoy_token import SERIAL, USERNAME, Cloud, make_jwt

PASSWORD = "p&ss=w0rd [s3cret]%"  # characters that must be URL-encoded
LOGIN = "/login/login.json"
TOKENS = "/tokens"
HOUR = 3600.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def trust(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


@pytest.fixture
async def cloud(certificate: tuple[Path, Path], clock: Clock) -> AsyncIterator[Cloud]:
    cloud = Cloud(token=make_jwt(clock.now + 180 * 86400))
    app = web.Application()
    app.router.add_post(LOGIN, cloud.login)
    app.router.add_post(TOKENS, cloud.tokens)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls_context(*certificate))
    await site.start()
    cloud.base = f"https://127.0.0.1:{runner.addresses[0][1]}"
    yield cloud
    await runner.cleanup()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
async def make(
    cloud: Cloud, folder: Path, clock: Clock, trust: ssl.SSLContext
) -> AsyncIterator[Callable[..., TokenCache]]:
    """Builds caches aimed at ``cloud`` with short retry waits; all are closed at the end."""
    caches: list[TokenCache] = []

    def build(**kwargs: Any) -> TokenCache:
        settings: dict[str, Any] = {
            "serial": SERIAL,
            "username": USERNAME,
            "password": PASSWORD,
            "login_url": f"{cloud.base}{LOGIN}?",
            "token_url": f"{cloud.base}{TOKENS}",
            "timeout": 2.0,
            "verify": trust,
            "clock": clock,
            "timer": clock,  # one hand-moved clock for both; the clock-jump test below parts them
            "max_wait": 0.3,
        }
        cache = TokenCache(kwargs.pop("path", folder / "envoy.token"), **(settings | kwargs))
        caches.append(cache)
        return cache

    yield build
    for cache in caches:
        await cache.aclose()


@pytest.fixture
def secrets_hidden(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log line of the test, httpx's included, must be free of the password and the tokens."""
    caplog.set_level(logging.DEBUG)
    yield
    text = "\n".join(record.getMessage() for record in caplog.get_records("call"))
    assert "HTTP Request: POST" in text  # httpx's own lines were captured too
    assert PASSWORD not in text and "[s3cret]" not in text
    assert ".eyJ" not in text  # a JWT's header.payload boundary


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def saved_token(folder: Path, token: str) -> None:
    """A token file as an earlier run left it: 0600."""
    (folder / "envoy.token").write_text(token)
    (folder / "envoy.token").chmod(0o600)


@pytest.mark.usefixtures("secrets_hidden")
async def test_first_get_logs_in_saves_the_file_0600_then_answers_from_memory(
    make: Callable[..., TokenCache], cloud: Cloud, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make()
    assert cache.expires_at is None
    assert await cache.get() == cloud.token
    assert cache.expires_at == expiry(cloud.token)
    (login_path, login_headers, form), (_, token_headers, body) = cloud.requests
    assert login_path == LOGIN and login_headers["Accept"] == "application/json"
    assert b"user%5Bemail%5D=owner%40example.org" in form and b"user%5Bpassword%5D=p%26ss%3Dw0rd" in form
    assert token_headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"session_id": "session-42", "serial_num": SERIAL, "username": USERNAME}
    file = folder / "envoy.token"
    assert file.read_bytes() == cloud.token.encode()  # no trailing newline
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert "token renewed, expires" in caplog.text
    assert await cache.get() == cloud.token
    assert len(cloud.requests) == 2


async def test_a_new_cache_reads_the_file_without_the_network(
    make: Callable[..., TokenCache], cloud: Cloud, folder: Path, clock: Clock
) -> None:
    saved = make_jwt(clock.now + 30 * 86400)
    saved_token(folder, saved)
    cache = make()
    assert await cache.get() == saved
    assert cache.expires_at == expiry(saved)
    assert cloud.requests == []


async def test_a_token_expiring_within_the_hour_is_renewed(
    make: Callable[..., TokenCache], cloud: Cloud, folder: Path, clock: Clock
) -> None:
    saved_token(folder, make_jwt(clock.now + HOUR - 1))
    cache = make()
    first = await cache.get()
    assert first == cloud.token and cloud.count(LOGIN) == 1
    exp = cache.expires_at
    assert exp is not None
    clock.now = exp - HOUR  # exactly an hour left: still good
    assert await cache.get() == first and cloud.count(LOGIN) == 1
    clock.now += 1
    cloud.token = make_jwt(clock.now + 365 * 86400)
    assert await cache.get() == cloud.token != first
    assert cloud.count(LOGIN) == 2 and (folder / "envoy.token").read_text() == cloud.token


async def test_renew_forces_a_new_token(
    make: Callable[..., TokenCache], cloud: Cloud, folder: Path, clock: Clock
) -> None:
    saved = make_jwt(clock.now + 30 * 86400)
    saved_token(folder, saved)
    cache = make()
    assert await cache.get() == saved
    assert await cache.renew() == cloud.token != saved
    assert cloud.count(LOGIN) == 1 and (folder / "envoy.token").read_text() == cloud.token


async def test_renew_right_after_a_fetch_keeps_the_token_and_warns(
    make: Callable[..., TokenCache], cloud: Cloud, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A gateway refusing a token just fetched would refuse the next one too: no login per poll."""
    cache = make()
    first = await cache.get()
    clock.now += 60
    assert await cache.renew() == first and cloud.count(LOGIN) == 1
    assert "the gateway refuses a token fetched 60 s ago; check the gateway serial number" in caplog.text
    clock.now += 900
    cloud.token = make_jwt(clock.now + 200 * 86400)
    assert await cache.renew() == cloud.token and cloud.count(LOGIN) == 2


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        ("", "not a JWT"),
        ("<html>maintenance</html>", "not a JWT"),
        (make_jwt(None), "not a JWT with an exp"),
        (make_jwt("soon"), "not a JWT with an exp"),
        ("expiring", "is the system clock right?"),
    ],
)
async def test_a_bad_new_token_is_refused(
    make: Callable[..., TokenCache], cloud: Cloud, folder: Path, clock: Clock, answer: str, detail: str
) -> None:
    cloud.token = make_jwt(clock.now + 1800) if answer == "expiring" else answer
    with pytest.raises(TokenError) as caught:
        await make().get()
    assert str(caught.value).startswith(INVALID_JWT) and detail in str(caught.value)
    assert isinstance(caught.value, SourceError)
    assert not (folder / "envoy.token").exists()


@pytest.mark.usefixtures("secrets_hidden")
@pytest.mark.parametrize(("status", "session_id"), [(401, "session-42"), (403, "session-42"), (200, None)])
async def test_a_refused_login_is_not_retried_and_leaks_nothing(
    make: Callable[..., TokenCache], cloud: Cloud, status: int, session_id: str | None
) -> None:
    cloud.login_status, cloud.session_id = status, session_id
    cache = make()
    with pytest.raises(TokenError, match=f"^Enlighten login refused: HTTP {status} ") as caught:
        await cache.get()
    assert "check the username and password" in str(caught.value)
    assert PASSWORD not in str(caught.value) and USERNAME not in str(caught.value)
    assert cloud.count(LOGIN) == 1 and cloud.count(TOKENS) == 0
    with pytest.raises(TokenError, match="not asking Enphase again for"):  # a wrong password stays wrong
        await cache.get()
    assert cloud.count(LOGIN) == 1


async def test_entrez_failing_once_is_retried(make: Callable[..., TokenCache], cloud: Cloud) -> None:
    cloud.token_statuses = [500, 503]
    assert await make().get() == cloud.token
    assert cloud.count(LOGIN) == 1 and cloud.count(TOKENS) == 3


async def test_entrez_refusing_the_serial_is_not_retried(make: Callable[..., TokenCache], cloud: Cloud) -> None:
    cloud.token_statuses = [400]
    with pytest.raises(TokenError, match="Entrez refused the token request: HTTP 400 Bad Request; check the gateway"):
        await make().get()
    assert cloud.count(TOKENS) == 1


@pytest.mark.parametrize("header", ["600", "date"])
async def test_a_429_login_is_not_asked_again_before_its_retry_after(
    make: Callable[..., TokenCache], cloud: Cloud, clock: Clock, header: str
) -> None:
    clock.now = float(int(clock.now))  # an HTTP date has whole seconds
    if header == "date":  # an HTTP date, read against the wall clock
        header = email.utils.format_datetime(dt.datetime.fromtimestamp(clock.now + 600, dt.UTC), usegmt=True)
    cloud.login_status, cloud.login_headers = 429, {"Retry-After": header}
    cache = make(attempts=3)
    with pytest.raises(TokenError, match=r"Enlighten login at .*: HTTP 429 Too Many Requests; asked to wait 600 s$"):
        await cache.get()
    assert cloud.count(LOGIN) == 1  # not retried within the attempt
    clock.now += 100  # past the first backoff (30 s), not past the Retry-After
    with pytest.raises(TokenError, match=r"\(not asking Enphase again for 500 s\)"):
        await cache.get()
    assert cloud.count(LOGIN) == 1
    clock.now += 501
    cloud.login_status = 200
    assert await cache.get() == cloud.token
    assert cloud.count(LOGIN) == 2


async def test_a_server_that_is_down_fails_quickly_then_waits(
    make: Callable[..., TokenCache], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = make(login_url=f"https://127.0.0.1:{closed_port()}/login/login.json?", attempts=3)
    fetch, fetches = cache._fetch, 0

    async def counted() -> tuple[str, float]:
        nonlocal fetches
        fetches += 1
        return await fetch()

    monkeypatch.setattr(cache, "_fetch", counted)
    async with asyncio.timeout(GUARD):  # its retries end within max_wait (0.3 s); the guard is no timing
        with pytest.raises(TokenError, match=r"Enlighten login at https://127\.0\.0\.1:\d+/.* failed after 3 attempt"):
            await cache.get()
    clock.now += 10
    with pytest.raises(TokenError, match=r"ConnectError.*\(not asking Enphase again for \d+ s\)"):
        await cache.get()
    assert fetches == 1  # the second call asked nobody: no connection attempt


async def test_a_stepped_wall_clock_moves_expiry_but_not_the_backoff(
    make: Callable[..., TokenCache], cloud: Cloud, clock: Clock
) -> None:
    timer = Clock()  # the monotonic clock, which NTP never steps
    cloud.login_status = 503
    cache = make(attempts=1, timer=timer)
    with pytest.raises(TokenError):
        await cache.get()
    logins = cloud.count(LOGIN)
    for step in (3 * 86400, -5 * 86400):  # booted days behind, then NTP: forward; once backward
        clock.now += step
        with pytest.raises(TokenError, match="not asking Enphase again"):
            await cache.get()
        assert cloud.count(LOGIN) == logins  # the wait is the timer's, not the wall clock's
    timer.now += 60  # the first wait (30 s at most) is over
    cloud.login_status = 200
    assert await cache.get() == cloud.token
    # the token's expiry is a date: judged by the wall clock, stepped or not
    exp = jwt.decode(cloud.token, options={"verify_signature": False})["exp"]
    clock.now = exp - HOUR + 1  # less than the hour of margin left: renewed
    cloud.token = make_jwt(exp + 86400)
    assert await cache.get() == cloud.token


async def test_failures_back_off_between_calls_growing_to_15_minutes(
    make: Callable[..., TokenCache], cloud: Cloud, clock: Clock
) -> None:
    cloud.login_status = 503
    cache = make(attempts=2)

    async def fails(tried: bool) -> None:
        before = cloud.count(LOGIN)
        with pytest.raises(TokenError):
            await cache.get()
        assert cloud.count(LOGIN) == before + (2 if tried else 0)

    await fails(tried=True)
    clock.now += 22  # the first wait is 30 s less up to a quarter of jitter
    await fails(tried=False)
    clock.now += 9
    await fails(tried=True)
    clock.now += 44  # then 60 s less jitter
    await fails(tried=False)
    clock.now += 17
    await fails(tried=True)
    for _ in range(6):  # 120, 240, 480, then capped at 900
        clock.now += 901
        await fails(tried=True)
    clock.now += 674
    await fails(tried=False)
    clock.now += 227
    await fails(tried=True)
    cloud.login_status = 200
    clock.now += 901
    assert await cache.get() == cloud.token


async def test_the_current_token_stays_in_use_while_renewal_fails(
    make: Callable[..., TokenCache], cloud: Cloud, folder: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    old = make_jwt(clock.now + 1800)
    saved_token(folder, old)
    cloud.login_status = 502
    cache = make(attempts=1)
    assert await cache.get() == old
    assert "Enlighten login" in caplog.text and "using the current token, which expires" in caplog.text
    caplog.clear()
    assert await cache.get() == old  # within the backoff: no request, no new warning
    assert cloud.count(LOGIN) == 1 and caplog.text == ""
    clock.now += 1800 - 59  # under a minute left: not worth sending
    with pytest.raises(TokenError):
        await cache.get()


async def test_an_unsafe_token_folder_is_refused(
    make: Callable[..., TokenCache], cloud: Cloud, folder: Path, tmp_path: Path
) -> None:
    folder.chmod(0o777)
    with pytest.raises(TokenError, match=f"token folder {folder} is world-writable; run: chmod o-w {folder}"):
        await make().get()
    with pytest.raises(TokenError, match="does not exist"):
        await make(path=tmp_path / "missing" / "envoy.token").get()
    assert cloud.requests == []


async def test_a_group_member_cannot_read_the_token_through_a_planted_temp_file(
    make: Callable[..., TokenCache], cloud: Cloud, folder: Path
) -> None:
    """A group-writable folder (NUT's /var/lib/nut is root:nut 0770) is used; a member who planted the temp file,
    0666, and holds it open, finds it empty after the save: the token went to a new file, 0600, of ours."""
    folder.chmod(0o770)
    planted = folder / ".envoy.token.nutbridge.tmp"
    planted.write_bytes(b"")
    planted.chmod(0o666)
    if os.geteuid() == 0:
        os.chown(folder, 0, 65534)
        os.chown(planted, 65534, 65534)  # nobody's, as a member of the folder's group would make it
    fd = os.open(planted, os.O_RDONLY)
    try:
        assert await make().get() == cloud.token
        assert os.read(fd, 4096) == b""
    finally:
        os.close(fd)
    saved = (folder / "envoy.token").stat()
    assert (saved.st_uid, stat.S_IMODE(saved.st_mode)) == (os.geteuid(), 0o600)
    assert (folder / "envoy.token").read_text() == cloud.token


@pytest.mark.parametrize("kind", ["group-readable", "symlink", "garbage", "expired", "huge"])
async def test_an_unusable_cached_file_is_replaced_by_a_fresh_token(
    make: Callable[..., TokenCache], cloud: Cloud, folder: Path, clock: Clock, kind: str
) -> None:
    file = folder / "envoy.token"
    good = make_jwt(clock.now + 30 * 86400)
    contents = {"garbage": "not a token\n", "expired": make_jwt(clock.now - 1), "huge": good + " " * 20000}
    if kind == "symlink":
        (folder / "elsewhere").write_text(good)
        file.symlink_to(folder / "elsewhere")
    else:
        file.write_text(contents.get(kind, good))
        file.chmod(0o640 if kind == "group-readable" else 0o600)
    assert await make().get() == cloud.token
    assert cloud.count(LOGIN) == 1
    assert not file.is_symlink() and file.read_text() == cloud.token
    assert stat.S_IMODE(file.stat().st_mode) == 0o600


async def test_a_clock_far_ahead_makes_the_cached_token_expired(
    make: Callable[..., TokenCache], cloud: Cloud, folder: Path, clock: Clock
) -> None:
    saved_token(folder, make_jwt(time.time() + 12 * HOUR))
    clock.now = time.time() + 86400
    cloud.token = make_jwt(clock.now + 12 * HOUR)
    assert await make().get() == cloud.token and cloud.count(LOGIN) == 1


async def test_two_callers_at_once_make_one_login(make: Callable[..., TokenCache], cloud: Cloud) -> None:
    cache = make()
    assert list(await asyncio.gather(cache.get(), cache.get())) == [cloud.token, cloud.token]
    assert cloud.count(LOGIN) == 1


async def test_tls_is_verified_by_default(make: Callable[..., TokenCache], cloud: Cloud) -> None:
    with pytest.raises(TokenError, match="CERTIFICATE_VERIFY_FAILED"):
        await make(verify=True, attempts=1).get()
    assert cloud.requests == []


def test_expiry_reads_exp_without_the_signature_or_other_claims() -> None:
    assert expiry(make_jwt(1_900_000_000, nbf=4_000_000_000, iat=4_000_000_000)) == 1_900_000_000
    assert expiry(make_jwt(1_000)) == 1_000  # long expired: judged by the caller, not pyjwt
    for bad in ("", "a.b.c", make_jwt(None), make_jwt(True), make_jwt(1e300)):
        assert expiry(bad) is None
