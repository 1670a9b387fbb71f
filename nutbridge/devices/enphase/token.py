"""The access token an Enphase IQ Gateway (Envoy) wants: fetched from Enphase's cloud, cached in memory and a file.

The gateway answers its local API only with a JWT that Enphase's cloud hands out. Getting one takes two calls, as
NUT's enphase-monitor makes them: an Enlighten login (form POST, answers a ``session_id``) and an Entrez token
request (JSON POST, answers the raw JWT). Tokens live for months, so the token is kept in memory and in a 0600
file, and the cloud is asked only when the token in hand expires within the hour (enphase-monitor's rule), or when
the gateway refuses it.

The cloud is outside our control. A failed login is retried a few times within one call, then it raises
``TokenError`` (a ``SourceError``: the poll loop counts a failed poll, and the port file goes to nocomms). It is
also remembered: further calls raise at once, until a growing delay (at most ``max_cooldown``) has passed, so an
outage or a wrong password never makes us hammer Enlighten. While a renewal fails, a token that is still good for
a minute or more is kept in use.

Neither the password nor the token ever reaches a message or a log line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import os
import random
import ssl
import stat
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, stop_before_delay
from tenacity.wait import wait_random_exponential

from nutbridge.errors import NutbridgeError, SourceError
from nutbridge.files import describe, replace_atomically
from nutbridge.ratelimit import retry_after, shown
from nutbridge.redact import redact_url

log = logging.getLogger(__name__)

MIN_LIFETIME = 3600.0  # a token is good only while it has an hour left: renewal is proactive, as enphase-monitor
USABLE_MARGIN = 60.0  # while renewal fails, a token with this much left is still used
FILE_LIMIT = 16 * 1024  # a JWT is about 1 kB; anything much bigger is not one
ACCEPT_JSON = {"Accept": "application/json"}
TRANSIENT_STATUS = frozenset({408, 425})  # besides 5xx: answers that may differ next time (429 asks to wait)
INVALID_JWT = "new token invalid or expiring within the hour; check the gateway serial number"


class TokenError(SourceError):
    """No usable gateway token: the cloud could not be reached, refused us, or the token file is unsafe."""


class TokenRateLimited(TokenError):
    """Enphase answered 429 Too Many Requests: it is not asked again for ``wait`` seconds (its Retry-After)."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class _RateLimited(NutbridgeError):
    def __init__(self, status: str, wait: float) -> None:
        super().__init__(status)
        self.wait = wait


class _Transient(NutbridgeError):
    """A failure that may pass on its own: a network error, a timeout, a failing or busy server."""


def expiry(token: str) -> float | None:
    """The ``exp`` claim of ``token``, or None when it is not a JWT with a sane numeric ``exp``.

    The signature is not checked: only the gateway holds Enphase's key, and it checks it. pyjwt's own exp check is
    turned off on purpose: expiry is judged here, against the injected clock, with the hour of margin."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    except (jwt.PyJWTError, ValueError):
        return None
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    exp = float(exp)
    return exp if math.isfinite(exp) and 0 < exp < 253402300800 else None  # up to year 9999: it can be printed


def when(timestamp: float) -> str:
    """``timestamp`` as local date and time, for log lines."""
    return dt.datetime.fromtimestamp(timestamp).astimezone().isoformat(sep=" ", timespec="seconds")


def _reason(exc: Exception) -> str:
    """A short reason for a failed request (httpx's timeouts often have an empty message)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _status(response: httpx.Response) -> str:
    return f"HTTP {response.status_code} {response.reason_phrase}".rstrip()


class TokenCache:
    """One gateway's token: ``get()`` before each poll, ``renew()`` when the gateway answered 401.

    ``max_wait`` bounds the retries of one request within one call (no new attempt starts after it; an attempt
    itself may take ``timeout``); ``attempts`` caps their number. After a failed renewal, calls raise at once for
    ``cooldown`` seconds, doubling with each further failure up to ``max_cooldown``, with jitter. ``renew()``
    logs in at most once per ``min_renew_interval``: a gateway that refuses a token just fetched will refuse the
    next one too (wrong serial number), and a login per poll could get the account locked."""

    def __init__(
        self,
        path: Path,
        *,
        serial: str,
        username: str,
        password: str,
        login_url: str,  # Enlighten's and Entrez's, as ``[envoy]`` sets them (config.ENLIGHTEN_LOGIN, ENTREZ_TOKENS)
        token_url: str,
        timeout: float = 10.0,
        verify: ssl.SSLContext | bool = True,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.monotonic,
        max_wait: float = 5.0,
        attempts: int = 3,
        cooldown: float = 30.0,
        max_cooldown: float = 900.0,
        min_renew_interval: float = 900.0,
        transport: httpx.AsyncBaseTransport | None = None,  # TEST mode's fixtures instead of the network
    ) -> None:
        self._path = path
        self._serial = serial
        self._username = username
        self._password = password
        self._login_url = login_url
        self._token_url = token_url
        self._timeout = timeout
        self._verify = verify
        self._clock = clock  # the wall clock, for the token's expiry (a date the cloud wrote)
        self._timer = timer  # the monotonic clock, for waits: a clock stepped by NTP moves neither backoff nor age
        self._max_wait = max_wait
        self._attempts = attempts
        self._cooldown = cooldown
        self._max_cooldown = max_cooldown
        self._min_renew_interval = min_renew_interval
        self._client: httpx.AsyncClient | None = None
        self._transport = transport
        self._lock = asyncio.Lock()  # two callers at once make one login, not two
        self._token: str | None = None
        self.expires_at: float | None = None
        self._fetched_at: float | None = None  # timer when the token in hand came from the cloud
        self._refusal_warned: float | None = None  # the _fetched_at of the token whose refusal was warned about
        self._failures = 0
        self._retry_at = 0.0
        self._last_failure = ""

    async def get(self) -> str:
        """A good token: the one in memory, else the file's, else a fresh one from the cloud.

        When the cloud fails, a token in hand that is still usable for a minute is returned (with a warning);
        otherwise TokenError."""
        async with self._lock:
            if self._token is not None and self._good(self.expires_at):
                return self._token
            self._check_folder()
            self._adopt(self._read_file())
            if self._token is not None and self._good(self.expires_at):
                return self._token
            attempted = self._timer() >= self._retry_at  # else the backoff after a failure still runs
            if attempted:
                self._explain_renewal()
            try:
                return await self._renew()
            except TokenError as exc:
                if self._token is None or self.expires_at is None or self.expires_at < self._clock() + USABLE_MARGIN:
                    raise
                if attempted:
                    log.warning("%s; using the current token, which expires %s", exc, when(self.expires_at))
                return self._token

    async def renew(self) -> str:
        """A fresh token from the cloud, validated and saved: the gateway refused the one in hand.

        Within ``min_renew_interval`` of the last fetch the token in hand is returned instead (with a warning,
        once for that token)."""
        async with self._lock:
            if self._token is not None and self._fetched_at is not None:
                age = self._timer() - self._fetched_at
                if age < self._min_renew_interval:
                    # once per token: a refusing gateway is asked again by every attempt of every poll
                    warned, self._refusal_warned = self._refusal_warned == self._fetched_at, self._fetched_at
                    log.log(
                        logging.DEBUG if warned else logging.WARNING,
                        "the gateway refuses a token fetched %.0f s ago; check the gateway serial number "
                        "(no new login for another %.0f s)",
                        age,
                        self._min_renew_interval - age,
                    )
                    return self._token
            self._check_folder()
            return await self._renew()

    async def aclose(self) -> None:
        """Close the HTTP client (a later call opens a new one)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # -- validity ------------------------------------------------------------------------------------------------

    def _good(self, exp: float | None) -> bool:
        return exp is not None and exp >= self._clock() + MIN_LIFETIME

    def _adopt(self, candidate: tuple[str, float] | None) -> None:
        """Take ``candidate`` as the token in hand when it lasts longer (another process may have renewed)."""
        if candidate is not None and (self.expires_at is None or candidate[1] > self.expires_at):
            self._token, self.expires_at = candidate
            self._fetched_at = None

    def _explain_renewal(self) -> None:
        if self.expires_at is None:
            return
        if self.expires_at <= self._clock():
            log.info("token expired %s; renewing", when(self.expires_at))
        else:
            log.info("token expires within the hour (%s); renewing", when(self.expires_at))

    # -- the file ------------------------------------------------------------------------------------------------

    def _check_folder(self) -> None:
        """The token folder must exist and not be world-writable: anyone could swap the file there.

        Group-writable is fine (NUT's state folder, the default, is root:nut 0770): a member may delete or swap
        the file, which costs a new login, but never read the token, which goes through a temp file created
        anew, 0600 (``create_temp``); a file found there is used only when regular and private (``_read_file``).
        """
        folder = self._path.parent
        try:
            info = folder.stat()
        except FileNotFoundError:
            raise TokenError(f"token folder {folder} does not exist; create it (mode 0700)") from None
        except OSError as exc:
            raise TokenError(f"token folder {folder}: {describe(exc)}") from exc
        if not stat.S_ISDIR(info.st_mode):
            raise TokenError(f"token folder {folder} is not a folder")
        if info.st_mode & stat.S_IWOTH:
            raise TokenError(f"token folder {folder} is world-writable; run: chmod o-w {folder}")

    def _read_file(self) -> tuple[str, float] | None:
        """The file's token and its exp, or None (missing, unsafe or garbage: a new one will be fetched).

        A file readable by group or others is not used: the token may have leaked, so a fresh one replaces it,
        saved 0600. A symbolic link is not followed."""
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            log.info("no token file %s yet", self._path)
            return None
        except OSError as exc:
            log.warning("cannot read the token file %s: %s; fetching a new token", self._path, describe(exc))
            return None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                log.warning("token file %s is not a regular file; fetching a new token", self._path)
                return None
            if info.st_mode & 0o077:
                log.warning(
                    "token file %s is readable or writable by others (mode %04o); not using it, "
                    "fetching a new token saved 0600",
                    self._path,
                    stat.S_IMODE(info.st_mode),
                )
                return None
            data = f.read(FILE_LIMIT + 1)
        try:
            token = data.decode("ascii").strip()
        except UnicodeDecodeError:
            token = ""
        exp = expiry(token) if len(data) <= FILE_LIMIT else None
        if exp is None:
            log.warning("token file %s does not hold a valid token; fetching a new one", self._path)
            return None
        return token, exp

    def _save(self, token: str) -> None:
        """Replace the file atomically, 0600, without a trailing newline. A failure keeps the token in memory."""
        try:
            replace_atomically(self._path, token.encode("ascii"), mode=0o600)
        except OSError as exc:
            log.warning("cannot save the token to %s: %s; keeping it in memory only", self._path, describe(exc))

    # -- the cloud -----------------------------------------------------------------------------------------------

    async def _renew(self) -> str:
        """Login and token request, unless a recent failure says to wait; a failure starts or extends the wait."""
        now = self._timer()
        if now < self._retry_at:
            raise TokenError(f"{self._last_failure} (not asking Enphase again for {self._retry_at - now:.0f} s)")
        try:
            token, exp = await self._fetch()
        except TokenError as exc:
            self._failures += 1
            delay = min(self._max_cooldown, self._cooldown * 2 ** min(self._failures - 1, 32))
            wait = delay * random.uniform(0.75, 1.0)
            if isinstance(exc, TokenRateLimited):  # at least as long as Enphase asked
                wait = max(wait, exc.wait)
            self._retry_at = self._timer() + wait
            self._last_failure = str(exc)
            raise
        self._failures, self._retry_at, self._last_failure = 0, 0.0, ""
        self._token, self.expires_at, self._fetched_at = token, exp, self._timer()
        self._save(token)
        log.info("token renewed, expires %s", when(exp))
        return token

    async def _fetch(self) -> tuple[str, float]:
        session_id = await self._login()
        body = {"session_id": session_id, "serial_num": self._serial, "username": self._username}
        response = await self._post("Entrez token request", self._token_url, json=body)
        if not response.is_success:
            raise TokenError(
                f"Entrez refused the token request: {_status(response)}; check the gateway serial number and username"
            )
        try:
            token = response.content.decode("ascii").strip()
        except UnicodeDecodeError:
            token = ""
        exp = expiry(token)
        if exp is None:
            raise TokenError(f"{INVALID_JWT} (Entrez answered something that is not a JWT with an exp)")
        if not self._good(exp):
            raise TokenError(f"{INVALID_JWT} (it expires {when(exp)}; is the system clock right?)")
        return token, exp

    async def _login(self) -> str:
        form = {"user[email]": self._username, "user[password]": self._password}
        response = await self._post("Enlighten login", self._login_url, data=form)
        if not response.is_success:
            raise TokenError(f"Enlighten login refused: {_status(response)}; check the username and password")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        session_id = answer.get("session_id") if isinstance(answer, dict) else None
        if not isinstance(session_id, str) or not session_id:
            raise TokenError(
                f"Enlighten login refused: {_status(response)} without a session_id; check the username and password"
            )
        return session_id

    async def _post(
        self, what: str, url: str, *, data: dict[str, str] | None = None, json: dict[str, str] | None = None
    ) -> httpx.Response:
        """POST, retrying what may pass (network errors, timeouts, 5xx) with jittered exponential waits.

        Any other answer is returned, a refusal included: a wrong password does not get better by retrying."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, verify=self._verify, transport=self._transport)
        client = self._client
        tries = 0

        async def once() -> httpx.Response:
            nonlocal tries
            tries += 1
            try:
                response = await client.post(url, data=data, json=json, headers=ACCEPT_JSON)
            except httpx.TransportError as exc:
                raise _Transient(_reason(exc)) from exc
            if response.status_code == 429:  # not asked again before its Retry-After: no retry here either
                wait = retry_after(response.headers.get("Retry-After"), now=self._clock())
                raise _RateLimited(_status(response), wait)
            if response.status_code >= 500 or response.status_code in TRANSIENT_STATUS:
                raise _Transient(_status(response))
            return response

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts) | stop_before_delay(self._max_wait),
            wait=wait_random_exponential(multiplier=self._max_wait / 10, max=self._max_wait / 2),
            retry=retry_if_exception_type(_Transient),
            before_sleep=lambda state: log.debug("%s failed (attempt %d); retrying", what, state.attempt_number),
            reraise=True,
        )
        where = redact_url(url)
        try:
            return await retrying(once)
        except _Transient as exc:
            raise TokenError(f"{what} at {where} failed after {tries} attempt(s): {exc}") from exc
        except _RateLimited as exc:
            raise TokenRateLimited(f"{what} at {where}: {exc}; asked to wait {shown(exc.wait)}", exc.wait) from exc
        except httpx.HTTPError as exc:  # not the network: retrying would not help
            raise TokenError(f"{what} at {where} failed: {_reason(exc)}") from exc
