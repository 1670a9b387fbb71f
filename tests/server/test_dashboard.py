"""The dashboard at / and the power flow at /flow, in Debian's real Chromium driven by playwright.

Each test runs a daemon on the built-in simulator (its own process, typed commands on stdin) and opens its page.
Screenshots at phone and desktop sizes go to build/screenshots/ (the README shows one).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nutbridge.simulator.history import write_history
from tests.conftest import need
from tests.helpers.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    SCREENSHOTS,
    Browser,
    Daemon,
    open_page,
    sync_playwright,
    until,
    wait_for_words,
)

DAY_SPAN = "nutbridge.charts['day-power'].scales.x.max - nutbridge.charts['day-power'].scales.x.min"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    need(sync_playwright is not None and CHROMIUM.exists(), "Debian's chromium and playwright (./scripts/test.sh)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = Daemon(tmp_path)
    yield running
    running.stop()


def test_the_dashboard_shows_the_flow_the_battery_and_the_plots_without_console_errors(
    browser: Browser, tmp_path: Path
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    write_history(tmp_path / "log", interval=120)  # a week to plot
    daemon = Daemon(tmp_path)
    try:
        for name, viewport, scheme in (
            ("desktop", DESKTOP, "light"),
            ("phone", PHONE, "light"),
            ("dark", DESKTOP, "dark"),
        ):
            page, problems = open_page(browser, daemon.url, viewport, scheme)
            wait_for_words(page, "On solar")
            until(page, "() => Number(document.getElementById('day-power').dataset.points) > 2")
            page.wait_for_selector("#week-power .uplot")
            # the simulator at noon: PV feeds the load and charges the battery
            assert page.text_content("#flow-pv") not in ("–", "0 W")
            assert page.text_content("#flow-battery-direction") == "▼ charging"
            assert page.eval_on_selector("#flow", "e => e.dataset.battery") == "charging"
            text = {key: str(page.text_content(f"#{key}")) for key in ("battery-charge", "battery-voltage",
                    "battery-runtime", "ups-status")}  # fmt: skip
            assert text["battery-charge"].endswith(" %") and text["battery-voltage"].endswith(" V")
            assert text["battery-runtime"].endswith(" min") and text["ups-status"].startswith("OL")
            assert "live" in str(page.text_content("#feed"))
            # readable at its size: nothing wider than the screen, every plot inside its card
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
            assert page.evaluate("[...document.querySelectorAll('.plot')].every(p => p.querySelector('.uplot')"
                                 ".offsetWidth <= p.parentElement.clientWidth)")  # fmt: skip
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == ("rgb(17, 19, 24)" if scheme == "dark" else "rgb(246, 247, 249)")
            page.wait_for_timeout(300)  # the dashes of the flow mid-stride
            page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)
            assert problems == []
            page.close()
    finally:
        daemon.stop()


@pytest.mark.usefixtures("midday_zone")  # today's file holds half a day whenever the test runs
def test_the_day_plot_holds_every_row_of_the_day_file(browser: Browser, tmp_path: Path) -> None:
    # a week of simulated history written before the daemon starts, then one poll an hour: nothing moves while
    # the page is read
    rows = write_history(tmp_path / "log", interval=60)
    daemon = Daemon(tmp_path, poll_interval=3600, pubsub=False)
    try:
        # the API answers before the first poll's row need be in the day file, and nothing brings the page a
        # later row (no pub/sub, a refresh an hour): the page opens once the file holds it
        deadline = time.monotonic() + 60  # a guard against a hang, not a timing assertion
        while daemon.rows_today() < rows + 1:
            assert daemon.process.poll() is None and time.monotonic() < deadline, "the first poll never reached the log"
            time.sleep(0.1)
        page, problems = open_page(browser, daemon.url, DESKTOP)
        until(page, "() => Number(document.getElementById('day-power').dataset.points) > 0", 60)
        points = int(page.eval_on_selector("#day-power", "e => e.dataset.points"))
        assert points == daemon.rows_today() == rows + 1  # ours and the daemon's first poll
        assert page.evaluate("nutbridge.charts['day-power'].data[0].length") == points
        # the 7 days: the first row of each 10 minutes
        stamps = [
            line.split(",")[0]
            for f in sorted((tmp_path / "log").glob("*.csv"))
            for line in f.read_text().splitlines()[1:]
        ]
        slots = {int(dt.datetime.fromisoformat(t).timestamp() // 600) for t in stamps}
        # the week loads after the day: wait until it is drawn (a guard of 60 s on a loaded machine, not a timing)
        until(
            page,
            "() => nutbridge.columns.week !== null && 'points' in document.getElementById('week-power').dataset",
            60,
        )
        assert page.evaluate("nutbridge.columns.week[0].length") == len(slots)
        assert "refreshing every 3600" in str(page.text_content("#feed"))  # pub/sub off: /api/status instead
        # values on hover: the legend shows the PV power of the point under the cursor
        page.locator("#day-power").scroll_into_view_if_needed()
        box = page.locator("#day-power .u-over").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
        legend = "() => document.querySelectorAll('#day-power .u-legend .u-series')[1].querySelector('.u-value')"
        until(page, f"{legend}.textContent.endsWith(' W')", 5)
        # zoom: a drag narrows the time axis, a double-click widens it again
        before = page.evaluate(DAY_SPAN)
        page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + 20)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + 20, steps=5)
        page.mouse.up()
        zoomed = page.evaluate(DAY_SPAN)
        assert zoomed < before / 3
        page.mouse.dblclick(box["x"] + box["width"] * 0.5, box["y"] + 20)
        until(page, f"() => Math.abs(({DAY_SPAN}) - {before}) <= 1e-6 * {before}", 5)  # widened again
        assert problems == []
    finally:
        daemon.stop()


def published(path: Path) -> dict[str, str]:
    """The port file's variables, as dummy-ups reads them."""
    lines = [line.split(": ", 1) for line in path.read_text().splitlines() if ": " in line]
    return {name: value for name, value in lines}


SUNRISE_LINE = r"/^\d\d:\d\d, in \d+ h \d+ min: ~\d+ %$/"


@pytest.mark.usefixtures("midday_zone")  # noon now, whenever the test runs: the sunrise is tomorrow's
def test_the_charge_at_sunrise_reaches_nut_the_api_and_the_dashboard(browser: Browser, tmp_path: Path) -> None:
    write_history(tmp_path / "log", interval=60)  # the simulator's last 7 days: its sun rises at 06:00 each day
    daemon = Daemon(tmp_path)
    try:
        deadline = time.monotonic() + 60  # a guard against a hang, not a timing assertion
        while "experimental.sunrise.timer" not in published(tmp_path / "solar.dev"):  # the scan runs in a thread
            assert daemon.process.poll() is None and time.monotonic() < deadline, "no sunrise in the port file"
            time.sleep(0.2)
        with urllib.request.urlopen(f"{daemon.url}/api/status", timeout=5) as answer:
            status = json.load(answer)
        for variables in (published(tmp_path / "solar.dev"), status["variables"]):
            sunrise = dt.datetime.fromisoformat(variables["experimental.sunrise.time"])
            # PV passes its threshold (2 % of the day's peak, 180 W × sin: at most 3.6 W) within 5 minutes of 06:00
            # (12/π × asin(0.02) h = 4.6 min); the rows are a minute apart, so the start is at 06:01-06:05
            assert sunrise.date() == dt.date.today() + dt.timedelta(days=1)
            assert dt.time(6, 1) <= sunrise.time() <= dt.time(6, 5)
            seconds = int(variables["experimental.sunrise.timer"])
            assert 17 * 3600 <= seconds <= 19 * 3600  # from today's noon hour
            # the simulator's 15 W load from a 100 Ah × 12 V (1200 Wh) battery: 1.25 % an hour
            expected = float(variables["battery.charge"]) - 1.25 * seconds / 3600
            assert abs(float(variables["experimental.battery.charge.sunrise"]) - max(0.0, expected)) <= 1
        page, problems = open_page(browser, daemon.url, DESKTOP)
        wait_for_words(page, "On solar")
        until(page, f"() => {SUNRISE_LINE}.test(document.getElementById('battery-sunrise').textContent)")
        assert str(page.text_content("#battery-sunrise")).startswith(sunrise.strftime("%H:%M"))
        assert problems == []
        page.close()
    finally:
        daemon.stop()


def test_night_shows_on_battery_within_two_polls_and_silence_shows_comms_lost(browser: Browser, daemon: Daemon) -> None:
    page, problems = open_page(browser, daemon.url, PHONE)
    wait_for_words(page, "On solar")
    assert page.text_content("#battery-sunrise") == "unknown: not enough history"  # a data log of no days
    before = daemon.rows_today()
    daemon.type("night")
    wait_for_words(page, "On battery", timeout=10)
    assert daemon.rows_today() - before <= 2  # each good poll writes one row
    assert page.eval_on_selector("#flow", "e => e.dataset.battery") == "discharging"
    assert page.text_content("#flow-battery-direction") == "▲ discharging"
    assert page.text_content("#flow-pv") == "0 W"
    daemon.type("silent")  # the simulator stops answering: after the 1 s grace, NUT is told
    wait_for_words(page, "Comms lost", timeout=20)
    assert "nocomms" in str(page.text_content("#ups-status"))
    assert page.eval_on_selector("#flow", "e => e.classList.contains('stale')")
    assert (daemon.folder / "solar.dev-nocomms").exists()
    page.screenshot(path=str(SCREENSHOTS / "dashboard-comms-lost-phone.png"), full_page=True)
    daemon.type("day")  # it answers again
    wait_for_words(page, "On solar", timeout=20)
    assert problems == []
    page.close()


def test_a_lost_feed_is_shown_and_comes_back(browser: Browser, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path)
    page, _ = open_page(browser, daemon.url, DESKTOP)
    try:
        wait_for_words(page, "On solar")
        daemon.stop()
        until(page, "() => document.body.dataset.feed === 'lost'", 10)
        assert "Live feed lost" in str(page.text_content("#feed"))
        assert page.evaluate("document.body.classList.contains('feed-lost')")
        # the daemon is back on the same port: the page reconnects by itself (its retries are 1, 2, 4 s apart)
        again = Daemon.__new__(Daemon)
        again.folder, again.port, again.url = daemon.folder, daemon.port, daemon.url
        again.process = subprocess.Popen([sys.executable, "-m", "nutbridge", "-c", str(tmp_path / "nutbridge.toml")],
                                         stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            until(page, "() => document.body.dataset.feed === 'live'", 30)
            wait_for_words(page, "On solar")
        finally:
            again.stop()
    finally:
        page.close()
        daemon.stop()


@pytest.mark.parametrize(
    ("style", "background"),
    [
        ("clear", "rgba(0, 0, 0, 0)"),
        ("black", "rgb(0, 0, 0)"),
        ("white", "rgb(255, 255, 255)"),
        ("grafana", "rgb(24, 27, 31)"),
    ],
)
def test_the_flow_alone_in_an_iframe_in_each_style(
    browser: Browser, daemon: Daemon, style: str, background: str
) -> None:
    # another site's page embedding the flow, as Home Assistant or Grafana do: its own server on loopback
    # (Chromium refuses a local frame in a page that does not come from a local address)
    embedding = f'<body style="background:#f0a"><iframe src="{daemon.url}/flow?style={style}" width="400" height="360">'
    with page_server(embedding) as home:
        page, problems = open_page(browser, home, {"width": 420, "height": 380})
        frame = page.frame_locator("iframe")
        frame.locator("#flow-pv").filter(has_text="W").wait_for()
        until(page.frames[1], "() => document.getElementById('nut-words').textContent === 'On solar'")
        assert frame.locator("body").evaluate("b => getComputedStyle(b).backgroundColor") == background
        assert frame.locator(".plots").count() == 0  # the flow alone
        page.screenshot(path=str(SCREENSHOTS / f"flow-{style}.png"))
        assert problems == []
        page.close()


@contextlib.contextmanager
def page_server(html: str) -> Iterator[str]:
    """An HTTP server on loopback answering ``html`` to every GET, in a thread; its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def asset_urls(page_html: str) -> list[str]:
    import re

    return re.findall(r'(?:src|href)="(/static/[^"]+)"', page_html)


@pytest.mark.parametrize("cache_seconds", [0, 600])
def test_assets_come_from_the_package_with_the_configured_browser_cache(tmp_path: Path, cache_seconds: int) -> None:
    daemon = Daemon(tmp_path, pubsub=False, extra=f"browser_cache_seconds = {cache_seconds}\n")
    try:
        status, headers, body = get(daemon.url + "/")
        assert (
            status == 200
            and headers["Cache-Control"] == "no-cache"
            and "default-src 'self'" in headers["Content-Security-Policy"]
        )
        urls = asset_urls(body.decode())
        cache_control = f"public, max-age={cache_seconds}, immutable" if cache_seconds else "no-cache"
        assert {u.split("?")[0] for u in urls} == {"/static/uPlot.min.css", "/static/dashboard.css",
            "/static/uPlot.iife.min.js", "/static/dashboard.js", "/static/uPlot.LICENSE"}  # fmt: skip
        assert "http://" not in body.decode() and "https://" not in body.decode()  # nothing from elsewhere
        for url in urls:
            status, headers, plain = get(daemon.url + url)
            assert status == 200
            assert headers["Cache-Control"] == cache_control
            name = url.split("?")[0].removeprefix("/static/")
            assert plain == (Path(__file__).parents[2] / "nutbridge" / "server" / "web" / name).read_bytes()
            status, headers, packed = get(daemon.url + url, {"Accept-Encoding": "gzip"})
            assert headers["Content-Encoding"] == "gzip" and gzip.decompress(packed) == plain
            status, _, empty = get(daemon.url + url, {"If-None-Match": headers["ETag"]})
            assert status == 304 and empty == b""
        assert get(daemon.url + "/static/../config.py")[0] == 404
        assert get(daemon.url + "/static/index.html")[0] == 404  # only the listed files
        status, _, text = get(daemon.url + "/flow?style=neon")
        assert status == 400 and b"clear, black, white, grafana" in text
        uplot = (Path(__file__).parents[2] / "nutbridge" / "server" / "web" / "uPlot.iife.min.js").read_text()
        assert uplot.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")  # the pinned version
    finally:
        daemon.stop()


def test_readings_as_columns_are_what_the_plots_draw(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, pubsub=False)
    try:
        fields = "PV%20power%20L,battery%20percentage"
        _, _, rows = get(f"{daemon.url}/api/readings?fields={fields}")
        _, _, columns = get(f"{daemon.url}/api/readings?fields={fields}&format=columns")
        as_rows: list[list[str]] = json.loads(rows)["rows"]
        as_columns: list[list[Any]] = json.loads(columns)["columns"]
        assert len(as_columns) == 3 and len(as_columns[0]) == len(as_rows) > 0
        first = dt.datetime.fromisoformat(as_rows[0][0]).timestamp()
        assert as_columns[0][0] == pytest.approx(first, abs=0.001)
        assert as_columns[1][0] == float(as_rows[0][1]) and as_columns[2][0] == float(as_rows[0][2])
        assert get(f"{daemon.url}/api/readings?format=csv")[0] == 400
    finally:
        daemon.stop()


def test_without_the_dashboard_the_routes_are_gone(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, pubsub=False, extra="dashboard = false\n")
    try:
        assert get(daemon.url + "/")[0] == 404 and get(daemon.url + "/flow")[0] == 404
        assert get(daemon.url + "/api/status")[0] == 200
    finally:
        daemon.stop()
