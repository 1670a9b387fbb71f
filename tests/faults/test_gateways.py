"""The HTTP sources: the Enphase gateway (HTTPS, self-signed, with its cloud) and the pyPowerwall proxy (HTTP, or
HTTPS behind a reverse proxy), each answering 401, 429, 500, a slow body, a reset before or inside the body,
and a TLS failure, through the monitor to the port file; and 429's Retry-After, honoured."""

from __future__ import annotations

import contextlib
import email.utils
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from nutbridge.devices.enphase import nut as enphase
from nutbridge.devices.enphase.source import EnvoySource
from nutbridge.devices.enphase.token import TokenCache, TokenError
from nutbridge.devices.http import RateLimited
from nutbridge.devices.powerwall import nut as powerwall
from nutbridge.devices.powerwall.source import PowerwallSource
from nutbridge.monitor import Monitor
from nutbridge.server.app import Sidecar, tls_context
from nutbridge.snapshot import Comms
from tests.faults.outage import TIMEOUT, ride_out, step, watched
from tests.faults.servers import HttpFaults, expired_certificate
from tests.helpers.envoy import SERIAL, Gateway
from tests.helpers.envoy_token import Cloud, make_jwt
from tests.helpers.powerwall import Clock, FakeProxy

PASSWORD = "secret pw"  # tests.devices.enphase.test_source.Gateway's Enlighten password
CLOUD = ("/login/login.json", "/tokens")
SPEED = 5.0  # the HTTP sources' monotonic clock runs this much faster: a 1 s wait passes in 0.2 s


def fast() -> float:
    return time.monotonic() * SPEED


class Site:
    """An aiohttp application from ``make_app`` (made anew for each listener) behind ``faults``, on a loopback
    port that keeps its number when the listener is swapped: TLS with another certificate, or plain HTTP."""

    def __init__(self, make_app: Callable[[], web.Application], faults: HttpFaults) -> None:
        self.make_app = make_app
        self.faults = faults
        self.port = 0
        self._sidecar: Sidecar | None = None

    async def serve(self, tls: ssl.SSLContext | None) -> None:
        await self.close()
        self._sidecar = Sidecar(self.faults.install(self.make_app()), "127.0.0.1", self.port, tls=tls)
        await self._sidecar.__aenter__()
        self.port = self._sidecar.port

    async def close(self) -> None:
        if self._sidecar is not None:
            await self._sidecar.__aexit__(None, None, None)
            self._sidecar = None


@dataclass
class Kit:
    """A source against its site, and how to make the site's TLS fail and work again."""

    source: EnvoySource | PowerwallSource
    site: Site
    faults: HttpFaults
    break_tls: Callable[[], object]
    mend_tls: Callable[[], object]
    secrets: tuple[str, ...]


@contextlib.asynccontextmanager
async def envoy_kit(
    tmp_path: Path, certificate: tuple[Path, Path], clock: Callable[[], float] = fast
) -> AsyncIterator[Kit]:
    """The gateway (tests.devices.enphase.test_source.Gateway) and its cloud on one HTTPS site; its TLS fails as
    plain HTTP."""
    gateway, faults = Gateway(), HttpFaults(affects=lambda path: not path.startswith(CLOUD))
    site = Site(gateway.app, faults)
    good = tls_context(*certificate)
    await site.serve(good)
    base = f"https://127.0.0.1:{site.port}"
    tokens = TokenCache(tmp_path / "envoy.token", serial=SERIAL, username="me@example.org", password=PASSWORD,
                        login_url=f"{base}/login/login.json?", token_url=f"{base}/tokens",
                        verify=ssl.create_default_context(cafile=str(certificate[0])))  # fmt: skip
    try:
        async with EnvoySource(f"127.0.0.1:{site.port}", serial=SERIAL, tokens=tokens, timeout=TIMEOUT,
                               clock=clock) as source:  # fmt: skip
            await source.read()  # the token, fetched and saved
            secrets = (PASSWORD, (tmp_path / "envoy.token").read_text(), ".eyJ")
            yield Kit(source, site, faults, lambda: site.serve(None), lambda: site.serve(good), secrets)
    finally:
        await site.close()


@contextlib.asynccontextmanager
async def powerwall_kit(
    tmp_path: Path, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, clock: Callable[[], float] = fast
) -> AsyncIterator[Kit]:
    """The proxy (tests.devices.powerwall.test_source.FakeProxy) over HTTPS, trusted through SSL_CERT_FILE as a
    reverse proxy's certificate would be; its TLS fails as that certificate expiring."""
    expired = expired_certificate(tmp_path / "expired")
    bundle = tmp_path / "trusted.pem"
    bundle.write_text(certificate[0].read_text() + expired[0].read_text())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    proxy, faults = FakeProxy(), HttpFaults()
    proxy.play("proxy")
    proxy.play("on-grid")
    proxy.change("/stats", {"config.PW_CACHE_EXPIRE": 1})  # asked at most every second (of the fast clock)

    def app() -> web.Application:
        application = web.Application()
        application.router.add_get("/{tail:.*}", proxy.handle)
        return application

    site = Site(app, faults)
    good = tls_context(*certificate)
    await site.serve(good)
    try:
        async with PowerwallSource(f"https://127.0.0.1:{site.port}", timeout=TIMEOUT, clock=clock) as source:
            yield Kit(source, site, faults, lambda: site.serve(tls_context(*expired)), lambda: site.serve(good), ())
    finally:
        proxy.release.set()
        await site.close()


ERRORS = {  # what each source says of each fault
    "envoy": {
        "401": r"the token was refused again after renewal \(HTTP 401\)",
        "429": r"HTTP 429 Too Many Requests: rate-limited for 1 s; not asked until then",
        "500": r"ivp/ensemble/relay: HTTP 500$",
        "slow": r"ivp/ensemble/relay: no answer within 0\.2 s",
        "reset": r"ivp/ensemble/relay: ReadError: \[Errno 104\] Connection reset by peer",
        "reset-body": r"ivp/ensemble/relay: (ReadError: \[Errno 104\] Connection reset by peer|RemoteProtocolError)",
        "tls": r"ivp/ensemble/relay: ConnectError: .*(WRONG_VERSION_NUMBER|record layer failure|wrong version)",
    },
    "powerwall": {
        "401": r"/stats: HTTP 401 Unauthorized|/soe: HTTP 401 Unauthorized",
        "429": r"HTTP 429 Too Many Requests: rate-limited for 1 s; not asked until then",
        "500": r"/soe: HTTP 500 Internal Server Error",
        "slow": r"no (complete )?answer within 0\.2 s",
        "reset": r"/soe: ReadError: \[Errno 104\] Connection reset by peer",
        "reset-body": r"/soe: (ReadError: \[Errno 104\] Connection reset by peer|RemoteProtocolError)",
        "tls": r"ConnectError: \[SSL: CERTIFICATE_VERIFY_FAILED\] certificate verify failed: certificate has expired",
    },
}


@pytest.mark.parametrize("fault", [*HttpFaults.FAULTS, "tls"])
@pytest.mark.parametrize("kind", ["envoy", "powerwall"])
async def test_a_failing_gateway_goes_nocomms_after_the_grace_and_comes_back(
    kind: str,
    fault: str,
    tmp_path: Path,
    certificate: tuple[Path, Path],
    port_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kit = envoy_kit(tmp_path, certificate) if kind == "envoy" else powerwall_kit(tmp_path, certificate, monkeypatch)
    table = enphase.TABLE if kind == "envoy" else powerwall.TABLE
    async with kit as k, watched(k.source, port_file, table=table) as monitor:

        async def begin() -> None:
            if fault == "tls":
                await step(k.break_tls)
            else:
                k.faults.fault, k.faults.retry_after = fault, "1"

        async def end() -> None:
            k.faults.fault = None
            if fault == "tls":
                await step(k.mend_tls)

        await ride_out(monitor, begin, end, error=ERRORS[kind][fault], caplog=caplog, secrets=k.secrets)
        assert fault == "tls" or k.faults.hits > 0


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("120", 120),  # delay-seconds
        ("http-date", 90),  # an HTTP date 90 s ahead
        ("86400", 3600),  # a day: capped at an hour
        (None, 60),  # no Retry-After: a minute
        ("soon", 60),  # unreadable: a minute
    ],
)
@pytest.mark.parametrize("kind", ["envoy", "powerwall"])
async def test_a_429_is_not_asked_again_before_its_retry_after(
    kind: str,
    header: str | None,
    wait: int,
    tmp_path: Path,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()  # the source's monotonic clock, moved by hand
    kit = (
        envoy_kit(tmp_path, certificate, clock)
        if kind == "envoy"
        else powerwall_kit(tmp_path, certificate, monkeypatch, clock)
    )
    async with kit as k:
        k.faults.fault = "429"
        k.faults.retry_after = (
            email.utils.formatdate(time.time() + wait, usegmt=True) if header == "http-date" else header
        )
        with pytest.raises(RateLimited, match=r"HTTP 429 Too Many Requests: rate-limited for (\d+) s") as first:
            await k.source.read()
        said = int(first.value.args[0].split("rate-limited for ")[1].split(" s")[0])
        assert wait - 2 <= said <= wait  # an HTTP date is in whole seconds, read a moment later
        assert k.faults.hits == 1
        k.faults.fault = None  # the server would answer now, but it asked us to wait
        clock.now += 6  # past the Powerwall's cache period, which would repeat the failure without asking
        with pytest.raises(RateLimited, match=r"rate-limited for \d+ s more after HTTP 429; not asked until then"):
            await k.source.read()
        clock.now += said - 6 - 1
        with pytest.raises(RateLimited, match=r"rate-limited for 1 s more"):
            await k.source.read()
        assert k.faults.hits == 1, "asked during the wait"
        clock.now += 6  # its Retry-After has passed (and the Powerwall's cache period too)
        reading = await k.source.read()
        assert reading.on_line is True


async def test_a_gateway_with_an_expired_untrusted_certificate_is_read_as_enphase_monitor_reads_it(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    """The gateway's certificate is self-signed by design, so it is not checked (curl -k in enphase-monitor):
    one that expired in 2020, trusted by nobody, still serves. The cloud's is checked (below)."""
    expired = expired_certificate(tmp_path / "expired")
    async with envoy_kit(tmp_path, certificate) as kit:
        await kit.site.serve(tls_context(*expired))
        assert (await kit.source.read()).on_line is True


async def test_the_enphase_cloud_with_an_expired_certificate_is_a_failed_poll_without_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    expired = expired_certificate(tmp_path / "expired")
    cloud = Cloud(token=make_jwt(time.time() + 86400 * 30))
    app = web.Application()
    app.router.add_post(CLOUD[0], cloud.login)
    app.router.add_post(CLOUD[1], cloud.tokens)
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    async with Sidecar(app, "127.0.0.1", 0, tls=tls_context(*expired)) as server:
        base = f"https://127.0.0.1:{server.port}"
        tokens = TokenCache(folder / "envoy.token", serial=SERIAL, username="me@example.org", password=PASSWORD,
                            login_url=f"{base}{CLOUD[0]}?", token_url=f"{base}{CLOUD[1]}", max_wait=0.2,
                            verify=ssl.create_default_context(cafile=str(expired[0])))  # fmt: skip
        async with EnvoySource("127.0.0.1:9", serial=SERIAL, tokens=tokens, timeout=TIMEOUT) as source:
            snapshot = await Monitor(source, interval=0.5, grace=0).poll()
    assert snapshot.comms is Comms.LOST and isinstance(snapshot.error, TokenError)
    assert "certificate has expired" in str(snapshot.error) and "Enlighten login" in str(snapshot.error)
    assert cloud.requests == [] and not (folder / "envoy.token").exists()
    assert PASSWORD not in caplog.text
