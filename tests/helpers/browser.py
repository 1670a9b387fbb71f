"""The dashboard's tests' parts: Debian's Chromium driven by playwright, and a daemon on the built-in simulator
(its own process, typed commands on stdin) with the API to open pages on."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from nutbridge.datalog.format import day_file
from tests.conftest import daemon_config
from tests.helpers import free_port

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
# As the machine's notes say: without the background-networking flags Chromium keeps dialling Google's hosts
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip
PHONE, DESKTOP = {"width": 360, "height": 740}, {"width": 1280, "height": 900}
__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "DESKTOP", "PHONE", "SCREENSHOTS", "Browser", "Daemon", "Frame", "Page",
           "open_page", "sync_playwright", "until", "wait_for_words", "words"]  # fmt: skip

try:
    from playwright.sync_api import Browser, ConsoleMessage, Frame, Page, sync_playwright
except ImportError:  # pragma: no cover - the test command installs it
    sync_playwright = None  # type: ignore[assignment]


class Daemon:
    """nutbridge on its simulator with the API (and pub/sub unless told otherwise), typed to on stdin."""

    def __init__(self, folder: Path, *, poll_interval: float = 1.0, pubsub: bool = True, extra: str = "") -> None:
        self.folder, self.port = folder, free_port()
        # each row in the day file at once (flush_interval = 0): the tests compare the plots with the files
        extra = f'[datalog]\nfolder = "log"\nflush_interval = 0\n[api]\nlisten = "127.0.0.1:{self.port}"\n{extra}'
        extra += "[pubsub]\nenabled = true\n" if pubsub else ""
        toml = daemon_config(folder, extra, poll_interval).read_text()
        (folder / "nutbridge.toml").write_text(toml.replace("[monitor]\n", "[monitor]\nnocomms_grace = 1\n"))
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "nutbridge", "-c", str(folder / "nutbridge.toml")],
                                        stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 30
        while not self.answers():
            assert self.process.poll() is None and time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.2)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/status", timeout=2):
                return True
        except (OSError, urllib.error.HTTPError):
            return False

    def type(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command}\n".encode())
        self.process.stdin.flush()

    def rows_today(self) -> int:
        path = day_file(self.folder / "log", dt.date.today())
        return max(0, len(path.read_text().splitlines()) - 1) if path.exists() else 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.communicate(timeout=15)


def open_page(browser: Browser, url: str, viewport: dict[str, int], scheme: str = "light") -> tuple[Page, list[str]]:
    """A new page at ``url``; the second item collects console errors, warnings and uncaught exceptions."""
    page = browser.new_page(viewport=viewport, color_scheme=scheme)  # type: ignore[arg-type]
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"{message.type}: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    page.goto(url)
    return page, problems


def words(page: Page) -> str:
    return str(page.text_content("#nut-words") or "")


def until(page: Page | Frame, expression: str, timeout: float = 15, arg: Any = None) -> None:
    """Wait until ``expression`` (a function of ``arg``) is true in the page. Polled from here: playwright's own
    wait_for_function compiles a string in the page, which the page's Content-Security-Policy rightly refuses."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression, arg):
        assert time.monotonic() < deadline, f"not within {timeout} s: {expression}"
        page.wait_for_timeout(50)


def wait_for_words(page: Page, text: str, timeout: float = 15) -> None:
    until(page, "t => document.getElementById('nut-words').textContent === t", timeout, text)
