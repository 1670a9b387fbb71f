"""nutbridge against Solar Protocol's own PHP v1 API on the same files: the same bytes, and the speed side by side.

The original ``chargecontroller.php`` is taken from a git mirror of Solar Protocol at run time (``--solar-protocol``,
its main branch's HEAD) into a temporary folder, with only its hard-coded paths (the data folder, the device list,
local.json) pointed at the bench's own, and served by ``php -S`` (php-cli, with PHP_CLI_SERVER_WORKERS=2 on
this 2-core machine); no PHP is ever kept in this repository. nutbridge serves the same folder with ``--no-poll``.
Both get the same local.json, device list and time zone, and 7 days of 2-minute rows (bench.api_load's fill).

1. Every query of a long list goes to both; status, Content-Type and body are compared byte for byte. The
   differences README lists as intended are marked as such; any other is a nutbridge bug (exit status 1).
2. Requests/s and p99 latency of bench.api_load's three queries, 1 client and 50, on each server.

Usage: .venv/bin/python -m bench.php_compare [--seconds 5] [--tz ZONE] [--skip-speed] [--solar-protocol GIT_DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from yarl import URL

from bench import api_load
from nutbridge.datalog.dayfiles import day_files, read_day
from nutbridge.node import local_zone
from nutbridge.server.legacy import VALUES

MIRROR = Path("/work/.mirror/alexnathanson+solar-protocol/repo")
ROUTES = {  # route → the original's file in Solar Protocol's tree (served at the same path under the docroot)
    "/api/v1/chargecontroller.php": "frontend/api/v1/chargecontroller.php",
    "/api/v1/opendata.php": "frontend/api/v1/opendata.php",
    "/api/v2/opendata.php": "frontend/api/v2/opendata.php",
}
ROUTE = "/api/v1/chargecontroller.php"  # the one the speed cells measure
WORKERS = 2
# The paths the PHP hard-codes (a Pi's layout) → the bench folder's file for each.
SP_PATHS = {
    "/home/pi/solar-protocol/charge-controller/data/": "data/",
    "/home/pi/solar-protocol/backend/data/deviceList.json": "backend/deviceList.json",
    "/home/pi/local/local.json": "local/local.json",
    "/home/pi/local/data/": "local/data/",
}
KEY = "bench-network-key-5f3a"
LOCAL_JSON = {  # as Solar Protocol's settings page writes it: numbers as strings
    "name": "Café Node",
    "description": "A solar server on a roof/terrace",
    "location": "Roof",
    "city": "New York",
    "country": "USA",
    "lat": "40.65 N",
    "long": "73.94 W",
    "bgColor": "#ffcc00",
    "font": "Monaco",
    "pvWatts": "120",
    "pvVolts": "18.5",
}
DEVICES = [
    {"mac": "b8:27:eb:00:00:01", "ip": "192.0.2.7", "name": "Hong Kong", "tz": "Asia/Hong_Kong"},
    {"mac": "b8:27:eb:00:00:02", "ip": "192.0.2.8:8080", "name": "Dominica", "tz": "America/Dominica"},
    {"mac": "dc:a6:32:00:00:03", "ip": "2001:db8::7", "name": "Sydney", "tz": "Australia/Sydney"},
]
BACKUP = "tracerData-old.csv.bak"  # an editor's backup beside the log: v1 lists it
SECRET = "../secret/tracerDataSecret"  # a file outside the data folder, by a path that contains "tracerData"
ACCESS = {"admin": "$2y$10$bench.hash.of.the.admin.password"}  # v1's local/access.json, beside local.json

# Why an answer differs on purpose (README, "The API: Solar Protocol v1 routes"); "" means it must not.
ONLY_LOG_FILES = "day= serves and lists only real log files (v1 lists and reads any path containing tracerData)"
DEVICE_LIST_KEY = "day=deviceList needs &api_key= with the network key (v1 hands out every peer's IP and MAC)"
NO_500 = "no input gives a 500 (PHP 8 fails on a NUL byte in a file name, an array where it wants a string)"
ONLY_PEER_FILES = "server= serves only listed nodes' files (v1 reads any path: server=../access is the admin hashes)"


@dataclass(frozen=True, slots=True)
class Case:
    query: str  # percent-encoded, sent as is
    expected: str = ""
    method: str = "GET"
    route: str = ROUTE


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    def show(self) -> str:
        return f"{self.status} {self.content_type!r} {len(self.body)} bytes"


def words(text: str) -> list[str]:
    """Queries separated by white space (none holds a space: they are percent-encoded)."""
    return text.split()


# Queries, one list a route; "" (an empty value) is added where it matters.
DURATIONS = words("1 3 7 0 -1 abc")
ODD_DURATIONS = words("8 2abc %203 3.9 1e1 0.5e1 99999999999999999999 1e999 -1e999")
VALUE_QUERIES = words("""value=PV-voltage&duration[]=2 value=battery-current value= value=pv-voltage value=PV+voltage
    value=PV%2Dvoltage value=PV-voltage%00 value[]=PV-voltage value[x]=PV-voltage value=x&value=PV-voltage
    value=PV-voltage&value[]=x""")
LINES = words("len head 0 1 5 -1 99999 abc 1abc 1.5 %201 1%20 1e1 -0 0x1A 1000abc 1e5abc 1e999 1e999abc")
DAYS = words("1 2 3 4 5 6 7 0 8 -1 abc 2abc %207 1e0 0.1e1 0.7e1 1e1 tracerData1999-01-01 tracerData")
INFOS = words("tz name description location city country color pvWatts pvVoltage wattage-scaler dump ping lat nope")
OTHER_QUERIES = words("""line[]=0 line=0&line[]=1 line[]=1&line=0 day[]=x day[a]=x day systemInfo[]=name
    networkInfo=deviceList networkInfo=other networkInfo[]=deviceList nothing=here VALUE=PV-voltage
    value=PV-voltage&line=0&day=list line=0&value=PV-voltage day=1&systemInfo=tz systemInfo=tz&networkInfo=deviceList
    %20value=PV-voltage +value=PV-voltage value%00x=PV-voltage value[x]y=PV-voltage value[=PV-voltage [x]=1
    line.x=0 day[a=1""")


NETWORK_INFOS = words("deviceList tz poe timestamp dump devices other")
SERVERS = words("0 1 2 3 -1 01 1.0 %201 all hongkong HongKong Hong%20Kong dominica sydney nowhere ../access "
                "..%2Faccess .%2F..%2Flocal%2Faccess")  # fmt: skip


def cases(folder: Path, route: str) -> list[Case]:
    """The queries of ``route``, PHP's odd ones included; ``folder`` holds the day files (some depend on today's
    rows)."""
    names = [p.name.removesuffix(".csv") for p in day_files(folder)]
    count = len(read_day(day_files(folder)[-1]))  # PHP's count($readData) for today: the header and the rows
    values = list(dict.fromkeys(VALUES))
    out = [Case(f"value={v}") for v in values]
    out += [Case(f"value={v}&duration={d}") for v in values for d in DURATIONS]
    out += [Case(f"value=PV-voltage&duration={d}") for d in [*ODD_DURATIONS, ""]]
    out += [Case(q) for q in VALUE_QUERIES]
    out += [Case(f"line={n}") for n in [*LINES, "", str(count - 1), str(count), f"{count - 0.5}"]]
    out += [Case("day=list", ONLY_LOG_FILES), Case("day=len", ONLY_LOG_FILES)]
    out += [Case(f"day={d}") for d in [*DAYS, names[0], names[-1], ""]]
    out += [Case("day=" + SECRET.replace("/", "%2F"), ONLY_LOG_FILES), Case("day=tracerData%00", NO_500)]
    on_cc = route.endswith("chargecontroller.php")  # only chargecontroller.php serves the raw list
    out += [Case("day=deviceList", DEVICE_LIST_KEY if on_cc else ""), Case("day=deviceList&api_key=wrong",
            DEVICE_LIST_KEY if on_cc else "")]  # fmt: skip
    out += [Case(f"day=deviceList&api_key={KEY}")]
    out += [Case(f"systemInfo={i}") for i in [*INFOS, ""]]
    out += [Case(q) for q in [*OTHER_QUERIES, ""]]
    out += [Case("value=PV-voltage", method="POST"), Case("day=1", method="POST")]
    if not on_cc:
        out += [Case(f"networkInfo={i}") for i in [*NETWORK_INFOS, ""]]
        out += [Case(f"server={n}", ONLY_PEER_FILES if "access" in n else "") for n in [*SERVERS, ""]]
        out += [Case(q) for q in words("server=1&value=PV-voltage value=PV-voltage&server=1 "
                                       "server=all&networkInfo=tz networkInfo=tz&server=0")]  # fmt: skip
        out += [Case("server[]=1", NO_500)]
    return [dataclasses.replace(case, route=route) for case in out]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(root: Path, git_dir: Path) -> tuple[Path, str]:
    """The bench folders: 7 days of rows, local.json, the device list, nutbridge's config, the PHP docroot.

    Returns the docroot and the commit the PHP came from."""
    for sub in ("data", "backend", "local", "secret"):
        (root / sub).mkdir(parents=True)
    api_load.fill(root / "data")
    (root / "data" / BACKUP).write_text("an editor's backup\n")
    header = ",".join(read_day(day_files(root / "data")[0])[0])
    (root / "secret" / "tracerDataSecret.csv").write_text(f"{header}\nnot in the data folder\n")
    (root / "local/local.json").write_text(json.dumps(LOCAL_JSON, indent=2, ensure_ascii=False))
    stamp = f"{time.time():.2f}"
    devices = [{**d, "time stamp": stamp, "log": [stamp]} for d in DEVICES]
    (root / "backend/deviceList.json").write_text(json.dumps(devices, separators=(",", ":")))
    config = root / "nutbridge.toml"
    config.write_text(
        f'[node]\nlocal_json = "{root}/local/local.json"\n\n'
        f'[peers]\nnetwork_key = "{KEY}"\ndevice_list = "{root}/backend/deviceList.json"\n'
    )
    config.chmod(0o600)
    peers = root / "local/data"  # what getRemoteData.py caches: each listed node's four days, header first
    peers.mkdir()
    for number, device in enumerate(DEVICES[:2]):  # Sydney's was never fetched
        rows = [list(r) for r in read_day(day_files(root / "data")[-1 - number])]
        (peers / f"{device['name'].replace(' ', '').lower()}.json").write_text(json.dumps([rows[0], *rows[:0:-1]]))
    (root / "local/access.json").write_text(json.dumps(ACCESS))
    commit = git(git_dir, "rev-parse", "HEAD").strip()
    docroot = root / "www"
    for route, path in ROUTES.items():
        source = git(git_dir, "show", f"HEAD:{path}")
        included = re.findall(r"^\s*(?:include|require)(?:_once)?\b.*$", source, re.MULTILINE)
        if included:
            raise SystemExit(f"{path} now includes other files ({included}); copy them too")
        for original, ours in SP_PATHS.items():
            source = source.replace(original, f"{root}/{ours}")
        if "/home/pi" in source:
            raise SystemExit(f"{path} at {commit[:10]} holds a /home/pi path this bench does not rewrite")
        (docroot / route.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (docroot / route.lstrip("/")).write_text(source)
    return docroot, commit


def git(git_dir: Path, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True, text=True).stdout


@contextlib.contextmanager
def server(command: list[str], env: dict[str, str], log: Path) -> Iterator[int]:
    """A server process on a free loopback port (``{port}`` in ``command``), once it answers; yields the port."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [c.replace("{port}", str(port)) for c in command],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # php -S forks its workers: they are stopped with it, as a group
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{command[0]} did not start: {log.read_text(errors='replace')[-2000:]}") from None
                time.sleep(0.05)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        with contextlib.suppress(ProcessLookupError):  # workers that outlived their parent
            os.killpg(proc.pid, signal.SIGKILL)


async def ask(session: aiohttp.ClientSession, port: int, case: Case) -> Answer:
    url = URL(f"http://127.0.0.1:{port}{case.route}?{case.query}", encoded=True)
    async with session.request(case.method, url) as response:
        return Answer(response.status, response.headers.get("Content-Type", ""), await response.read())


async def ask_all(port: int, all_cases: list[Case]) -> list[Answer]:
    async with aiohttp.ClientSession() as session:
        return [await ask(session, port, case) for case in all_cases]


def short_diff(a: bytes, b: bytes, context: int = 40) -> str:
    """Where two bodies part, with a little context on each side."""
    i = next((n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    start = max(0, i - context)

    def cut(body: bytes) -> str:
        return body[start : start + 2 * context].decode("utf-8", "replace")

    return f"from byte {i}: PHP …{cut(a)!r}…\n{'':14}nutbridge …{cut(b)!r}…"


def compare(php_port: int, nb_port: int, all_cases: list[Case]) -> int:
    """Ask both servers every case; print the summary and each difference; returns the unexpected ones."""
    php_answers = asyncio.run(ask_all(php_port, all_cases))
    nb_answers = asyncio.run(ask_all(nb_port, all_cases))
    same = 0
    expected: list[tuple[Case, Answer, Answer]] = []
    unexpected: list[tuple[Case, Answer, Answer]] = []
    for case, php, nb in zip(all_cases, php_answers, nb_answers, strict=True):
        if php == nb:
            same += 1
        else:
            (expected if case.expected else unexpected).append((case, php, nb))
    print(f"\nByte-for-byte ({len(all_cases)} queries: status, Content-Type, body)")
    print(f"  {same} identical, {len(expected)} different as README intends, {len(unexpected)} unexpected")
    for route in ROUTES:
        mine = [c for c in all_cases if c.route == route]
        print(f"  {route}: {len(mine)} queries, {sum(c.expected != '' for c in mine)} with an intended difference")
    for title, group in (("intended differences", expected), ("UNEXPECTED differences (nutbridge bugs)", unexpected)):
        if group:
            print(f"  {title}:")
        for case, php, nb in group:
            method = "" if case.method == "GET" else f"{case.method} "
            print(f"    {method}{case.route}?{case.query}" + (f"  ({case.expected})" if case.expected else ""))
            print(f"{'':14}PHP {php.show()}; nutbridge {nb.show()}")
            if php.body != nb.body:
                print(f"{'':14}{short_diff(php.body, nb.body)}")
    return len(unexpected)


def speed(php_port: int, nb_port: int, seconds: float) -> None:
    """bench.api_load's queries and clients on each server, side by side."""
    api_load.SECONDS = seconds
    print(f"\nSpeed ({seconds:g} s a cell, aiohttp clients in one process on loopback; ratio = nutbridge / PHP)")
    print(f"  {'query':<30} {'clients':>7} | {'PHP req/s':>9} {'p99 ms':>7} | {'nutbridge':>9} {'p99 ms':>7} | ratio")
    for query in api_load.QUERIES:
        for clients in (1, 50):
            cells = []
            for port in (php_port, nb_port):
                url = f"http://127.0.0.1:{port}{ROUTE}?{query}"
                asyncio.run(warm(url))
                cells.append(asyncio.run(api_load.measure(url, clients)))
            (php_rate, php_p99), (nb_rate, nb_p99) = cells
            print(
                f"  {query:<30} {clients:>7} | {php_rate:>9,.0f} {php_p99:>7.1f} | {nb_rate:>9,.0f} {nb_p99:>7.1f} |"
                f" {nb_rate / php_rate:5.1f}x"
            )


async def warm(url: str, requests: int = 10) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(requests):
            async with session.get(url) as response:
                await response.read()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--solar-protocol", type=Path, default=MIRROR, metavar="GIT_DIR",
                   help=f"a (bare) git clone of Solar Protocol (default {MIRROR})")  # fmt: skip
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per speed cell (default 5; 12 cells)")
    p.add_argument("--tz", help="the time zone of both servers (default: the system's, as nutbridge finds it)")
    p.add_argument("--skip-speed", action="store_true", help="only compare the answers")
    args = p.parse_args()
    php = shutil.which("php")
    if php is None:
        sys.exit("php not found; install Debian's php-cli: apt-get update && apt-get install -y php-cli")
    if not (args.solar_protocol / "HEAD").exists() and not (args.solar_protocol / ".git").exists():
        sys.exit(f"{args.solar_protocol}: not a git directory of Solar Protocol (--solar-protocol)")
    zone = args.tz or local_zone()
    try:
        zoneinfo.ZoneInfo(zone)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        sys.exit(f"{zone}: not a time zone both PHP and nutbridge know (--tz, e.g. Europe/Berlin)")
    os.environ["TZ"] = zone  # this process (the rows' dates) and both servers agree on "today"
    time.tzset()
    version = subprocess.run([php, "-r", "echo PHP_VERSION;"], check=True, capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory(prefix="php-compare-") as tmp:
        root = Path(tmp)
        docroot, commit = prepare(root, args.solar_protocol)
        rows = sum(len(read_day(p)) - 1 for p in day_files(root / "data"))
        print(f"{rows} rows over {api_load.DAYS} days ({api_load.STEP} s apart) in {root / 'data'}, time zone {zone}")
        print(f"PHP {version}: Solar Protocol's {', '.join(ROUTES.values())} at {commit[:10]},")
        print(f"  php -S -d date.timezone={zone}")
        print(f"  with PHP_CLI_SERVER_WORKERS={WORKERS} (2 worker processes; the built-in server closes the connection "
              "after each answer)")  # fmt: skip
        print(f"nutbridge: python -m nutbridge --no-poll, one process (keep-alive); {os.cpu_count()} CPUs")
        php_env = {**os.environ, "PHP_CLI_SERVER_WORKERS": str(WORKERS)}
        php_cmd = [php, "-d", f"date.timezone={zone}", "-S", "127.0.0.1:{port}", "-t", str(docroot)]
        nb_cmd = [sys.executable, "-m", "nutbridge", "-c", str(root / "nutbridge.toml"), "--no-poll",
                  "--data-dir", str(root / "data"), "--api-listen", "127.0.0.1:{port}"]  # fmt: skip
        with (
            server(php_cmd, php_env, root / "php.log") as php_port,
            server(nb_cmd, dict(os.environ), root / "nutbridge.log") as nb_port,
        ):
            all_cases = [case for route in ROUTES for case in cases(root / "data", route)]
            unexpected = compare(php_port, nb_port, all_cases)
            if not args.skip_speed:
                speed(php_port, nb_port, args.seconds)
    sys.exit(1 if unexpected else 0)


if __name__ == "__main__":
    main()
