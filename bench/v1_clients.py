"""Solar Protocol's own v1 Python clients, unchanged, against nutbridge nodes and against PHP nodes.

The clients (backend/core/clientPostIP.py, solarProtocol.py with SolarProtocolClass.py, getRemoteData.py) and
the PHP (frontend/api) come from a git mirror of Solar Protocol at run time (``--solar-protocol``, its HEAD) into
a temporary folder; none of it is kept in this repository. Each node is a network namespace on a bridge
(bench.netns, addresses in 10.77.0.0/24, its interface named wlan0 with its own MAC, as the clients read
/sys/class/net/wlan0/address), with its own /home/pi (a bind mount in a private mount namespace), so the
clients' hard-coded paths, port 80 and host names work unchanged: /etc/hosts in every namespace sends
server.solarpowerforartists.com and solarprotocol.net to bench.v1_gateway (on the bridge), which answers
``?myip``, records DNS updates and every post to solarprotocol.net (a 404: no node holds the name). The
gateway's self-signed certificate is trusted by the clients through REQUESTS_CA_BUNDLE, not by changing them.
A PHP node runs ``php -S 0.0.0.0:80`` on the original frontend/api, with one line changed: api.php's bcrypt
hash (the real network's) is replaced by a hash of the bench's key. A nutbridge node runs ``nutbridge -c FILE
--no-poll`` on port 80 over the same folders. The clients run in a venv of their own (only ``requests``).

1. The same data (day files, local.json, deviceList.json) on three PHP nodes, then on three nutbridge nodes at
   the same addresses and MACs; on each node in turn: clientPostIP, solarProtocol, clientPostIP again (its
   log now carries the election), getRemoteData. Compared: what the clients print (stamps and times masked),
   their exit status, the bodies they post to solarprotocol.net, their DNS updates, the device lists left on
   every node, poe.log, and getRemoteData's /home/pi/local/data/<name>.json byte for byte.
2. A mixed network: 2 PHP nodes (clientPostIP then solarProtocol, the v1 way) and 2 nutbridge nodes (their own
   announcer and election); every device list must reach the 4 nodes, and every node must name the same
   point of entry for the same readings: first a PHP node is the sunniest, then a nutbridge node.
3. The v1 API examples (utilities/apiV1-examples, bench.v1_examples): clientGet-example.py for 12 queries and
   clientGet-JS-example in Debian's chromium (playwright) for 7, against a PHP node, then a nutbridge node with
   the same data; compared: what the script prints and its exit status, what the page logs and throws.

Checks 1 and 2 run twice: as is (one node in Etc/GMT+5, which a v1 client posts as "Etc/GMT 5") and as 1b/2b
with that node in America/Chicago, so a tz problem cannot hide any other difference. Every line of the table is
identical (or ok), expected (an intended difference, with its reason), or DIFFERENT (a nutbridge finding, with
the first differing bytes and the known causes seen in the run); exit status 1 on any DIFFERENT or ERROR.
Needs root, iproute2, util-linux's unshare, php-cli, openssl, and the package index for the clients' venv;
check 3 also Debian's chromium and playwright (the [test] extra).

The clients' DEV mode (ENV=DEV) does not help: clientPostIP then posts the key "this-will-fail" and the IP
"this-will-fail", and SolarProtocolClass still runs /home/pi/solar-protocol/backend/get_env.sh. The pages in
frontend/api/v1/examples/*.html hold no script; the examples that run are utilities/apiV1-examples (check 3).

Usage: .venv/bin/python -m bench.v1_clients [--solar-protocol GIT_DIR] [--only 1|1b|2|2b|3 ...] [--keep]
       [--nutbridge-src DIR]   (another nutbridge tree, e.g. `git archive REV nutbridge | tar -x -C DIR`)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs

from bench import netns

MIRROR = Path("/work/.mirror/alexnathanson+solar-protocol/repo")
REPO = Path(__file__).resolve().parent.parent
CLIENT_VENV = Path("/tmp/nutbridge-v1-clients-venv")  # requests for the v1 clients, made if missing
KEY = "bench-network-key-5f3a"
DNS_KEY = "bench-dns-key-0c41"
GATEWAY_IP = "10.77.0.254"
GATEWAY_HOSTS = {"server.solarpowerforartists.com": GATEWAY_IP, "solarprotocol.net": GATEWAY_IP}
SUBNET = "10.77.0.0/24"
SOURCES = ("backend/core", "backend/get_env.sh", "frontend/api", "utilities/apiV1-examples")  # of the mirror
HASH_LINE = re.compile(r"^\$hash = '[^']*';$", re.MULTILINE)  # api.php's one hard-coded bcrypt hash
# Paths on a node, as the clients and the PHP hard-code them (under /home/pi).
SP = "solar-protocol"
DATA = f"{SP}/charge-controller/data"
BACKEND_DATA = f"{SP}/backend/data"
CORE = f"{SP}/backend/core"
HEADER = [
    "datetime", "PV voltage", "PV current", "PV power L", "PV power H", "battery voltage", "battery current",
    "battery power L", "battery power H", "load voltage", "load current", "load power", "battery percentage",
]  # fmt: skip
DAYS = 5  # day files per node (getRemoteData asks for 4)
STEP = 15 * 60  # seconds between rows

# Intended differences: what nutbridge does on purpose, as a change to PHP's text, and why. An answer that differs
# from PHP's only by these is "expected"; any other difference is a finding.
INTENDED: list[tuple[Callable[[str], str], str]] = [
    (
        lambda text: text.replace('"tz":"Etc/GMT 5"', '"tz":"Etc/GMT+5"'),
        "nutbridge stores the zone a v1 client meant: its unencoded body turns Etc/GMT+5 into 'Etc/GMT 5', which PHP "
        "stores as it came (README, The API: Solar Protocol v1 routes)",
    ),
]
# A cause of differences known when this bench was written (nutbridge takes the tz as sent since 5824f28; the
# bench names the cause if it comes back).
SPACE_TZ = "a v1 client posts tz Etc/GMT+5 as 'Etc/GMT 5' (its body is not URL-encoded); nutbridge refuses it"


@dataclass(frozen=True)
class Spec:
    """One node: where it is, what it is, and what its data says."""

    key: str
    name: str
    ip: str
    mac: str
    zone: str
    pv_watts: str  # local.json's pvWatts, a string as the settings page writes it
    watts: float  # PV power L of its newest row
    kind: str = "php"  # or "nutbridge"
    knows: tuple[str, ...] | None = ()  # the keys in its device list at start; None: no file
    seeds: tuple[str, ...] = ()  # nutbridge: [peers] peers


@dataclass
class Row:
    check: str
    subject: str
    result: str  # identical | expected | DIFFERENT | ERROR | ok
    note: str = ""


@dataclass
class Outcome:
    """What one client run left: exit status, output."""

    rc: int
    stdout: str
    stderr: str


@dataclass
class Node:
    spec: Spec
    home: Path  # the node's /home/pi
    space: str = ""
    log: Path = field(default_factory=Path)

    def path(self, relative: str) -> Path:
        return self.home / relative

    def devices(self) -> list[dict[str, Any]] | None:
        try:
            data = json.loads(self.path(f"{BACKEND_DATA}/deviceList.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, list) else None

    def macs(self) -> set[str]:
        return {str(d.get("mac", "")).strip() for d in self.devices() or [] if isinstance(d, dict)}


# --- preparation ---------------------------------------------------------------------------------------------


def git(git_dir: Path, *args: str) -> bytes:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True).stdout


def extract(git_dir: Path, into: Path) -> str:
    """The clients and the PHP from the mirror's HEAD into ``into``; returns the commit."""
    commit = git(git_dir, "rev-parse", "HEAD").decode().strip()
    archive = git(git_dir, "archive", "HEAD", *SOURCES)
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    for script in ("clientPostIP.py", "solarProtocol.py", "SolarProtocolClass.py", "getRemoteData.py"):
        if not (into / "backend/core" / script).is_file():
            raise SystemExit(f"the mirror's HEAD has no backend/core/{script}")
    return commit


def php_hash(php: str) -> str:
    done = subprocess.run([php, "-r", "echo password_hash($argv[1], PASSWORD_DEFAULT);", KEY],
                          check=True, capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip()


def client_python() -> Path:
    """The v1 clients' interpreter: a venv with requests (Solar Protocol's only third-party import there)."""
    python = CLIENT_VENV / "bin/python"
    ready = python.exists() and subprocess.run([python, "-c", "import requests"], check=False, capture_output=True)
    if ready and ready.returncode == 0:
        return python
    subprocess.run(["python3", "-m", "venv", str(CLIENT_VENV)], check=True)  # Debian's python3, not nutbridge's venv
    subprocess.run([python, "-m", "pip", "install", "-q", "requests"], check=True)
    return python


def make_cert(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "gateway.pem", folder / "gateway.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", str(key), "-out",
         str(cert), "-subj", "/CN=server.solarpowerforartists.com",
         "-addext", "subjectAltName=DNS:server.solarpowerforartists.com"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def cell(x: float) -> str:
    return repr(round(x, 2))


def row(when: dt.datetime, sun: float, peak: float, charge: float) -> str:
    """A v1 row (csv_datalogger's form: naive local time with microseconds, Python float reprs)."""
    pv = peak * sun
    volts = 12.0 + 6.0 * sun
    cells = [cell(volts), cell(pv / volts), cell(pv), "0.0", cell(12.6 + sun), cell(pv / 13), cell(pv * 0.9), "0.0",
             cell(12.6 + sun), "0.18", "2.18", repr(round(charge, 2))]  # fmt: skip
    return ",".join([str(when), *cells])


def sun_at(when: dt.datetime) -> float:
    hours = when.hour + when.minute / 60
    return max(0.0, math.sin(math.pi * (hours - 6) / 12))


def write_days(folder: Path, spec: Spec, now: float) -> None:
    """DAYS day files in the node's zone, a row every STEP seconds, the newest (now) with ``spec.watts``."""
    folder.mkdir(parents=True, exist_ok=True)
    zone = zoneinfo.ZoneInfo(spec.zone)
    local_now = dt.datetime.fromtimestamp(now, zone).replace(tzinfo=None, microsecond=512345)
    peak = float(spec.pv_watts) * 0.8
    for back in range(DAYS - 1, -1, -1):
        day = local_now.date() - dt.timedelta(days=back)
        start = dt.datetime.combine(day, dt.time(0, 0, 7, 123456 + back))
        lines = [",".join(HEADER)]
        when = start
        while when.date() == day and when < local_now - dt.timedelta(seconds=60):
            lines.append(row(when, sun_at(when), peak, 0.5 + 0.4 * sun_at(when)))
            when += dt.timedelta(seconds=STEP)
        if back == 0:
            lines.append(newest_row(local_now, spec))
        (folder / f"tracerData{day}.csv").write_text("\n".join(lines) + "\n")


def newest_row(local_now: dt.datetime, spec: Spec) -> str:
    volts = 17.5
    cells = [cell(volts), cell(spec.watts / volts), cell(spec.watts), "0.0", "13.1", "1.5", cell(spec.watts * 0.9),
             "0.0", "13.1", "0.18", "2.18", "0.8"]  # fmt: skip
    return ",".join([str(local_now), *cells])


def append_newest(node: Node, watts: float) -> None:
    """A new newest row on ``node`` with PV power ``watts`` (its sun changed)."""
    zone = zoneinfo.ZoneInfo(node.spec.zone)
    local_now = dt.datetime.now(zone).replace(tzinfo=None)
    if local_now.microsecond == 0:
        local_now = local_now.replace(microsecond=1)
    path = node.path(f"{DATA}/tracerData{local_now.date()}.csv")
    with path.open("a") as out:
        out.write(newest_row(local_now, replace(node.spec, watts=watts)) + "\n")


def device_entry(spec: Spec, stamp: str) -> dict[str, Any]:
    """An entry as a v1 node's post leaves it: a ``+`` in the zone arrives as a space (the body is not encoded)."""
    tz = spec.zone.replace("+", " ")
    return {"mac": spec.mac, "ip": spec.ip, "time stamp": stamp, "name": spec.name, "tz": tz, "log": [stamp]}


def prepare_node(root: Path, sources: Path, spec: Spec, specs: dict[str, Spec], *, now: float, hash_: str) -> Node:
    """The node's /home/pi: the clients, its data, local.json, .spenv, its device list; the PHP or the config."""
    home = root / spec.key
    (home / SP / "backend").mkdir(parents=True)
    shutil.copytree(sources / "backend/core", home / CORE)
    shutil.copy2(sources / "backend/get_env.sh", home / SP / "backend/get_env.sh")
    (home / BACKEND_DATA).mkdir(parents=True)
    (home / "local/data").mkdir(parents=True)
    write_days(home / DATA, spec, now)
    local = {"name": spec.name, "description": f"{spec.name}, a bench node", "location": "Bench", "city": "Here",
             "country": "Nowhere", "bgColor": "#ffcc00", "pvWatts": spec.pv_watts, "pvVolts": "18"}  # fmt: skip
    (home / "local/local.json").write_text(json.dumps(local, indent=2))
    (home / "local/.spenv").write_text(f"API_KEY={KEY}\nDNS_KEY={DNS_KEY}\n")  # no STATIC_HOST_IP: ?myip is asked
    if spec.knows is not None:
        stamp = f"{now - 3600:.4f}"
        entries = [device_entry(specs[k], stamp) for k in spec.knows]
        (home / BACKEND_DATA / "deviceList.json").write_text(json.dumps(entries, separators=(",", ":")))
    if spec.kind == "php":
        shutil.copytree(sources / "frontend/api", home / SP / "frontend/api")
        api = home / SP / "frontend/api/v1/api.php"
        text = api.read_text()
        if len(HASH_LINE.findall(text)) != 1:
            raise SystemExit("api.php no longer holds exactly one `$hash = '…';` line; update HASH_LINE")
        api.write_text(HASH_LINE.sub(lambda _: f"$hash = '{hash_}';", text))  # the only change to the PHP
    return Node(spec, home)


def nutbridge_config(node: Node, specs: dict[str, Spec], *, network: bool, cert: Path) -> Path:
    """A nutbridge node over the same /home/pi folders; with ``network``, its own announcer and election."""
    spec = node.spec
    lines = [
        "[datalog]", f'folder = "/home/pi/{DATA}"',
        "[api]", 'listen = "0.0.0.0:80"',
        "[node]", 'local_json = "/home/pi/local/local.json"',
        "[peers]", f"network_key = {json.dumps(KEY)}",
        f'device_list = "/home/pi/{BACKEND_DATA}/deviceList.json"', f'poe_log = "/home/pi/{BACKEND_DATA}/poe.log"',
        f"allow_addresses = {json.dumps([SUBNET])}", 'interface = "wlan0"',
    ]  # fmt: skip
    if network:
        dns = (
            "import ssl, sys, urllib.request as u; c = ssl.create_default_context(cafile=sys.argv[1]); "
            "print(u.urlopen(f'https://server.solarpowerforartists.com/?ip={sys.argv[3]}&key={sys.argv[2]}', "
            "context=c, timeout=10).read().decode())"
        )
        lines += [
            "announce = true", "announce_interval = 2", "election = true", "election_interval = 2",
            "election_freshness = 86400", f"peers = {json.dumps([specs[k].ip for k in spec.seeds])}",
            f"dns_update_command = {json.dumps(['/usr/bin/python3', '-c', dns, str(cert), DNS_KEY, '{ip}'])}",
        ]  # fmt: skip
    path = node.home / "nutbridge.toml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


# --- running ------------------------------------------------------------------------------------------------


class Run:
    """One bench run: the network, the gateway, the nodes' servers, the table."""

    def __init__(self, root: Path, git_dir: Path, php: str, nutbridge_src: Path = REPO) -> None:
        self.root = root
        self.php = php
        self.nutbridge_src = nutbridge_src
        self.rows: list[Row] = []
        self.sources = root / "sources"
        self.commit = extract(git_dir, self.sources)
        self.hash = php_hash(php)
        self.python = client_python()
        self.cert, self.cert_key = make_cert(root)
        self.gateway_log = root / "gateway.jsonl"
        self.spaces: dict[str, str] = {}
        self.stack = contextlib.ExitStack()
        self.net = self.stack.enter_context(netns.Net(hosts=GATEWAY_HOSTS))
        self.net.switch_address(GATEWAY_IP)
        gateway = self.stack.enter_context(self.net.background(
            self.net.switch,
            [sys.executable, "-m", "bench.v1_gateway", "--record", str(self.gateway_log), "--cert", str(self.cert),
             "--key", str(self.cert_key), "--dns-key", DNS_KEY],
            root / "gateway.out", cwd=REPO,
        ))  # fmt: skip
        netns.wait_port(self.net.switch, GATEWAY_IP, 443, gateway, root / "gateway.out")

    def close(self) -> None:
        self.stack.close()

    def add(self, check: str, subject: str, result: str, note: str = "") -> None:
        self.rows.append(Row(check, subject, result, note))
        mark = {"identical": "  ", "ok": "  ", "expected": " ~"}.get(result, "!!")
        print(f"{mark} [{check}] {subject}: {result}{f' ({note})' if note else ''}", flush=True)

    def space(self, spec: Spec) -> str:
        """The node's namespace (made once per address: check 1's two setups share them)."""
        if spec.ip not in self.spaces:
            self.spaces[spec.ip] = self.net.add_host(spec.key, spec.ip, spec.mac)
        return self.spaces[spec.ip]

    def gateway_records(self) -> list[dict[str, Any]]:
        try:
            text = self.gateway_log.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def env(self, zone: str) -> dict[str, str]:
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TZ": zone, "LANG": "C.UTF-8", "HOME": "/root",
                "REQUESTS_CA_BUNDLE": str(self.cert)}  # fmt: skip

    def server(
        self,
        node: Node,
        servers: contextlib.ExitStack,
        *,
        network: bool = False,
        specs: dict[str, Spec],
        router: Path | None = None,
    ) -> None:
        """Start the node's server (PHP or nutbridge) on port 80 in its namespace, until ``servers`` closes;
        wait until it listens. ``router``: a php -S router script for a PHP node."""
        spec = node.spec
        node.space = self.space(spec)
        node.log = self.root / "logs" / f"{node.home.parent.name}-{spec.key}-{spec.kind}.log"
        node.log.parent.mkdir(exist_ok=True)
        if spec.kind == "php":
            argv = [self.php, "-d", f"date.timezone={spec.zone}", "-d", "display_errors=0", "-S", "0.0.0.0:80",
                    "-t", f"/home/pi/{SP}/frontend", *([str(router)] if router else [])]  # fmt: skip
            env = self.env(spec.zone)
        else:
            config = nutbridge_config(node, specs, network=network, cert=self.cert)
            argv = [sys.executable, "-m", "nutbridge", "-c", f"/home/pi/{config.name}", "--no-poll"]
            env = {**self.env(spec.zone), "PYTHONPATH": str(self.nutbridge_src)}
        proc = servers.enter_context(
            self.net.background(node.space, argv, node.log, home=node.home, env=env, cwd=self.nutbridge_src)
        )
        netns.wait_port(node.space, spec.ip, 80, proc, node.log)

    def client(self, node: Node, script: str) -> Outcome:
        """Run one original client on ``node``, in its namespace, with its /home/pi."""
        done = self.net.run(node.space, [str(self.python), f"/home/pi/{CORE}/{script}"], home=node.home,
                            env=self.env(node.spec.zone), cwd="/", timeout=180)  # fmt: skip
        return Outcome(done.returncode, done.stdout, done.stderr)

    def fetch(self, node: Node, path: str, key: str = "") -> tuple[int, str]:
        """GET a path of ``node`` from inside its namespace: (status, body)."""
        script = (
            "import sys, urllib.request as u, urllib.error as e\n"
            "r = u.Request(sys.argv[1], headers={'X-Network-Key': sys.argv[2]} if sys.argv[2] else {})\n"
            "try:\n    a = u.urlopen(r, timeout=10); print(a.status); sys.stdout.write(a.read().decode())\n"
            "except e.HTTPError as x:\n    print(x.code); sys.stdout.write(x.read().decode())\n"
        )
        done = self.net.run(node.space, ["python3", "-c", script, f"http://{node.spec.ip}{path}", key], timeout=30)
        status, _, body = done.stdout.partition("\n")
        return (int(status) if status.isdigit() else 0), body


# --- masking and comparing ----------------------------------------------------------------------------------

STAMP = re.compile(r"(stamp=)\d+(?:\.\d+)?|(\"time stamp\":\s*\")[^\"]*(\")|('time stamp':\s*')[^']*(')")
WHEN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?")


def masked(text: str, times: bool = True) -> str:
    """Stamps (time.time() at each post) and, with ``times``, datetimes (poe.log's) as <T>."""
    text = STAMP.sub(lambda m: "".join(g for g in (m[1], m[2], m[4]) if g) + "<T>" + (m[3] or m[5] or ""), text)
    return WHEN.sub("<T>", text) if times else text


def first_difference(a: str, b: str, context: int = 60) -> str:
    i = next((n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    start = max(0, i - context // 2)
    return f"at char {i}: PHP {a[start : start + context]!r} | nutbridge {b[start : start + context]!r}"


# --- check 1 ------------------------------------------------------------------------------------------------

CHECK1 = [
    Spec("a", "Node One", "10.77.0.11", "b8:27:eb:77:00:11", "America/New_York", "50", 20.0, knows=("a", "b")),
    Spec("b", "Node Two", "10.77.0.12", "b8:27:eb:77:00:12", "Etc/GMT+5", "100", 60.0, knows=("a", "b", "c")),
    Spec("c", "Node Three", "10.77.0.13", "dc:a6:32:77:00:13", "Asia/Kolkata", "25", 12.5, knows=None),
]  # scaled: a 20, b 30, c 25; c has no device list yet (its first post makes one)
CLIENT_STEPS = [("clientPostIP.py", 1), ("solarProtocol.py", 1), ("clientPostIP.py", 2), ("getRemoteData.py", 1)]
PLUS_ZONE = "Etc/GMT+5"  # the zone a v1 client posts as "Etc/GMT 5"
OTHER_ZONE = "America/Chicago"  # in its place in the b variants: what else differs, apart from that


@dataclass
class Setup:
    """What one setup of check 1 left behind."""

    outcomes: dict[tuple[str, int, str], Outcome] = field(default_factory=dict)  # (script, round, node) → …
    files: dict[str, bytes | None] = field(default_factory=dict)  # "node:path" → bytes (None: missing)
    posts: list[str] = field(default_factory=list)  # bodies posted to solarprotocol.net
    dns: list[str] = field(default_factory=list)  # DNS updates at the gateway
    myip: list[str] = field(default_factory=list)
    tz: tuple[int, str] = (0, "")  # node a's answer to opendata.php?systemInfo=tz
    logs: dict[str, str] = field(default_factory=dict)


def gateway_query(record: dict[str, Any]) -> dict[str, list[str]]:
    return parse_qs(record["query"], keep_blank_values=True)


def run_setup(run: Run, label: str, kind: str, specs: dict[str, Spec], now: float) -> Setup:
    specs = {k: replace(s, kind=kind) for k, s in specs.items()}
    root = run.root / f"check{label}-{kind}"
    nodes = [prepare_node(root, run.sources, s, specs, now=now, hash_=run.hash) for s in specs.values()]
    before = len(run.gateway_records())
    setup = Setup()
    with contextlib.ExitStack() as servers:  # stopped before the files are read: nutbridge writes what it holds
        for node in nodes:
            run.server(node, servers, specs=specs)
        setup.tz = run.fetch(nodes[0], "/api/v1/opendata.php?systemInfo=tz")
        for script, rnd in CLIENT_STEPS:
            for node in nodes:
                setup.outcomes[(script, rnd, node.spec.key)] = run.client(node, script)
    for node in nodes:
        setup.logs[node.spec.key] = node.log.read_text(errors="replace")
        for rel in (f"{BACKEND_DATA}/deviceList.json", f"{BACKEND_DATA}/poe.log"):
            p = node.path(rel)
            setup.files[f"{node.spec.key}:{rel}"] = p.read_bytes() if p.exists() else None
        for p in sorted(node.path("local/data").glob("*.json")):
            setup.files[f"{node.spec.key}:local/data/{p.name}"] = p.read_bytes()
    for rec in run.gateway_records()[before:]:
        query = gateway_query(rec)
        if rec["port"] == 80:
            setup.posts.append(f"{rec['remote']} {rec['method']} {rec['path']} {rec['body']}")
        elif "ip" in query:
            ok = query.get("key") == [DNS_KEY]
            setup.dns.append(f"from {rec['remote']}: ip={query['ip'][0]} ({'key ok' if ok else 'wrong key'})")
        elif "myip" in query:
            setup.myip.append(rec["remote"])
    return setup


def tz_refusals(logs: dict[str, str]) -> list[str]:
    """nutbridge's log lines for posts or entries it refused for their tz."""
    return [line.split(" ", 2)[-1] for log in logs.values() for line in log.splitlines() if "tz: a time-zone" in line]


def check1(run: Run, label: str, zone_b: str) -> None:
    """The same data on PHP nodes, then on nutbridge nodes; every client on every node; compare all they left."""
    specs = {s.key: replace(s, zone=zone_b) if s.key == "b" else s for s in CHECK1}
    now = time.time()
    php = run_setup(run, label, "php", specs, now)
    nb = run_setup(run, label, "nutbridge", specs, now)
    names = {k: f"{k} ({s.name}, {s.zone})" for k, s in specs.items()}
    refused = tz_refusals(nb.logs)
    if refused:
        request = next((b for b in php.posts if f"ip={specs['b'].ip}" in b), "?")
        printed = nb.outcomes[("clientPostIP.py", 1, "b")].stdout
        said = "empty" if "Malformatted response from localhost:\n\n" in printed else "see the rows below"
        body = masked(request.split(" ", 3)[-1])
        run.add(label, f"nutbridge takes the tz a v1 client posts ({zone_b} arrives as {zone_b.replace('+', ' ')!r})",
                "DIFFERENT", f"{SPACE_TZ}: POST /api/v1/api.php {body!r}; PHP stores it and answers the list, "
                f"nutbridge answers {said} and logs {refused[0]!r}; the rows below follow")  # fmt: skip

    # Known causes seen in this run, named on every difference that may follow from them.
    causes = "".join([
        "after the tz refusal (above); " * bool(refused),
        f"nutbridge answered opendata.php?systemInfo=tz with {nb.tz[0]} (the clients' tz and getRemoteData's day=4 "
        "need it); " * (nb.tz[0] != 200),
    ])  # fmt: skip

    def compare(subject: str, a: str, b: str) -> None:
        if a == b:
            run.add(label, subject, "identical")
            return
        reasons = []
        for change, reason in INTENDED:
            if change(a) != a:
                a = change(a)
                reasons.append(reason)
        if a == b:
            run.add(label, subject, "expected", "; ".join(reasons))
        else:
            run.add(label, subject, "DIFFERENT", causes + first_difference(a, b))

    compare("opendata.php?systemInfo=tz: status and body", f"{php.tz[0]} {php.tz[1]!r}", f"{nb.tz[0]} {nb.tz[1]!r}")
    for script, rnd, key in php.outcomes:
        p, n = php.outcomes[(script, rnd, key)], nb.outcomes[(script, rnd, key)]
        name = f"{script.removesuffix('.py')}{' round 2' if rnd == 2 else ''} on {names[key]}"
        compare(f"{name}: exit status", str(p.rc), str(n.rc))
        compare(f"{name}: what it prints", masked(p.stdout), masked(n.stdout))
        if p.stderr or n.stderr:
            compare(f"{name}: its errors", tail(p.stderr), tail(n.stderr))
    for key, name in names.items():
        stdouts = [o.outcomes[("solarProtocol.py", 1, key)].stdout for o in (php, nb)]
        verdict = ["point of entry" if "Point of entry" in text else "not" for text in stdouts]
        compare(f"solarProtocol's election on {name}", *verdict)
    compare("bodies posted to solarprotocol.net", "\n".join(map(masked, php.posts)), "\n".join(map(masked, nb.posts)))
    compare("DNS updates at the gateway", "\n".join(php.dns), "\n".join(nb.dns))
    compare("?myip asked of the gateway by", " ".join(php.myip), " ".join(nb.myip))
    for path in sorted(set(php.files) | set(nb.files)):
        a, b = php.files.get(path), nb.files.get(path)
        subject = f"file {path}"
        if path.endswith(".json") and "local/data" in path:  # getRemoteData's: byte for byte
            compare(subject, show(a), show(b))
        else:
            compare(subject, masked(show(a)), masked(show(b)))


def show(data: bytes | None) -> str:
    return "<missing>" if data is None else data.decode("utf-8", "replace")


def tail(text: str, lines: int = 3) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --- check 2 ------------------------------------------------------------------------------------------------

CHECK2 = [
    Spec("p1", "PHP One", "10.77.0.21", "b8:27:eb:77:00:21", "America/New_York", "50", 20.0, knows=("p1", "n1")),
    Spec("p2", "PHP Two", "10.77.0.22", "b8:27:eb:77:00:22", "Etc/GMT+5", "100", 80.0, knows=("p2",)),
    Spec("n1", "Bridge One", "10.77.0.23", "dc:a6:32:77:00:23", "Asia/Kolkata", "50", 25.0, kind="nutbridge",
         knows=None, seeds=("p2",)),
    Spec("n2", "Bridge Two", "10.77.0.24", "dc:a6:32:77:00:24", "Europe/Berlin", "200", 120.0, kind="nutbridge",
         knows=None, seeds=("p1",)),
]  # fmt: skip  # scaled: p1 20, p2 40, n1 25, n2 30; then n2 48
N2_LATER = 192.0  # n2's PV power in phase 2: 48 W scaled, more than p2's 40 by over the election margin


def wait(seconds: float, done: Callable[[], bool], every: float = 0.5) -> bool:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


class Mixed:
    """Check 2's network: 2 PHP nodes run by the v1 clients, 2 nutbridge nodes that announce and elect."""

    def __init__(self, run: Run, label: str, zone_p2: str) -> None:
        self.run, self.label = run, label
        self.specs = {s.key: replace(s, zone=zone_p2) if s.key == "p2" else s for s in CHECK2}
        self.root = run.root / f"check{label}"
        self.nodes = {k: prepare_node(self.root, run.sources, s, self.specs, now=time.time(), hash_=run.hash)
                      for k, s in self.specs.items()}  # fmt: skip
        self.php = [n for n in self.nodes.values() if n.spec.kind == "php"]
        self.nutbridge = [n for n in self.nodes.values() if n.spec.kind == "nutbridge"]
        self.by_mac = {s.mac: k for k, s in self.specs.items()}
        self.outputs: list[str] = []

    def v1_round(self, script: str) -> dict[str, Outcome]:
        """``script`` on every PHP node, as v1's runner does."""
        out = {n.spec.key: self.run.client(n, script) for n in self.php}
        self.outputs.extend(f"--- {k} {script} (exit {o.rc})\n{o.stdout}{o.stderr}" for k, o in out.items())
        return out

    def refused(self) -> str:
        """The known cause, when nutbridge's logs show it."""
        return f"; {SPACE_TZ}" if tz_refusals({n.spec.key: read(n.log) for n in self.nutbridge}) else ""

    def discovery(self) -> None:
        """The PHP nodes announce the v1 way, a round every few seconds (nutbridge's every 2 s) until every list
        holds the 4 nodes, or 6 rounds."""
        everyone = set(self.by_mac)
        for _ in range(6):
            self.v1_round("clientPostIP.py")
            if wait(4, lambda: all(n.macs() == everyone for n in self.nodes.values())):
                break
        for node in self.nodes.values():
            missing = sorted(self.by_mac.get(m, m) for m in everyone - node.macs())
            extra = sorted(node.macs() - everyone)
            note = ", ".join([f"missing {missing}"] * bool(missing) + [f"unknown {extra}"] * bool(extra))
            if missing and node.spec.kind == "nutbridge":
                note += self.refused()
            subject = f"{node.spec.key}'s ({node.spec.kind}) device list holds the 4 nodes"
            self.run.add(self.label, subject, "DIFFERENT" if note else "ok", note)

    def election(self, phase: str, winner: str) -> None:
        """Every node must name ``winner``: the v1 clients by solarProtocol's verdict, nutbridge by its holder;
        the gateway must see DNS updates for ``winner`` only."""
        run, specs = self.run, self.specs
        dns_before = len(run.gateway_records())
        wait(40, lambda: all(holder(run, n) == specs[winner].mac for n in self.nutbridge))
        if specs[winner].kind == "nutbridge":  # its DNS command runs when it takes over; the v1 side is asked after
            wait(10, lambda: any(gateway_query(r).get("ip") == [specs[winner].ip]
                                 for r in run.gateway_records()[dns_before:]))  # fmt: skip
        v1 = self.v1_round("solarProtocol.py")
        says = {k: ("point of entry" if "Point of entry" in o.stdout else "not") for k, o in v1.items()}
        for node in self.nutbridge:
            mac = holder(run, node)
            says[node.spec.key] = f"holder {self.by_mac.get(mac, mac) if mac else None}"
        wanted = {k: ("point of entry" if k == winner else "not") for k in says if specs[k].kind == "php"}
        wanted |= {k: f"holder {winner}" for k in says if specs[k].kind == "nutbridge"}
        records = run.gateway_records()[dns_before:]
        dns_ips = sorted({q["ip"][0] for r in records if "ip" in (q := gateway_query(r))})
        scaled = ", ".join(f"{k} {self.scaled(k):g}" for k in specs)
        ok = says == wanted and dns_ips == [specs[winner].ip]
        note = f"scaled W: {scaled}; says: {says}; DNS updates for {dns_ips}" + ("" if ok else self.refused())
        run.add(self.label, f"phase {phase}: every node names {winner} point of entry", "ok" if ok else "DIFFERENT",
                note)  # fmt: skip

    def scaled(self, key: str) -> float:
        node = self.nodes[key]
        newest = (node.path(DATA) / max(p.name for p in node.path(DATA).iterdir())).read_text().splitlines()[-1]
        return float(newest.split(",")[3]) * 50.0 / float(node.spec.pv_watts)

    def log_reaches(self, writer: str, reader: str) -> None:
        """``writer``'s point-of-entry event (its poe.log) reaches ``reader``'s list through the announcements."""
        self.v1_round("clientPostIP.py")
        mac = self.specs[writer].mac
        got = wait(10, lambda: bool(entry_log(self.nodes[reader], mac)))
        note = f"{reader} holds log {entry_log(self.nodes[reader], mac)!r}" + ("" if got else self.refused())
        self.run.add(self.label, f"{writer}'s poe.log line reaches {reader}'s device list", "ok" if got else
                     "DIFFERENT", note)  # fmt: skip


def check2(run: Run, label: str, zone_p2: str) -> None:
    """2 PHP nodes (v1 clients) and 2 nutbridge nodes (announcer, election): one network, one point of entry.
    First p2 (PHP) is the sunniest, then n2 (nutbridge) gets more sun; every node must follow."""
    mixed = Mixed(run, label, zone_p2)
    try:
        with contextlib.ExitStack() as servers:
            for node in mixed.nodes.values():
                run.server(node, servers, network=True, specs=mixed.specs)
            mixed.discovery()
            mixed.election("1", "p2")
            append_newest(mixed.nodes["n2"], N2_LATER)
            mixed.election("2", "n2")
            mixed.log_reaches("p2", "n1")
            mixed.log_reaches("n2", "p1")
    finally:
        (mixed.root / "v1-clients.out").write_text("\n".join(mixed.outputs))


def read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def holder(run: Run, node: Node) -> str | None:
    status, body = run.fetch(node, "/api/election")
    try:
        value = json.loads(body)["holder"] if status == 200 else None
    except (ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def entry_log(node: Node, mac: str) -> list[str]:
    for entry in node.devices() or []:
        if str(entry.get("mac", "")).strip() == mac:
            log = entry.get("log") or []
            return [x for x in log if isinstance(x, str) and WHEN.search(x)]
    return []


# --- main ---------------------------------------------------------------------------------------------------


def table(rows: list[Row]) -> None:
    width = min(90, max((len(r.subject) for r in rows), default=10))
    print(f"\n{'check':<5} {'subject':<{width}} result")
    for r in rows:
        print(f"{r.check:<5} {r.subject:<{width}} {r.result}")
        if r.note and r.result != "identical":
            print(f"{'':<6}{r.note}")
    counts = {k: sum(r.result == k for r in rows) for k in ("identical", "ok", "expected", "DIFFERENT", "ERROR")}
    print("\n" + ", ".join(f"{v} {k}" for k, v in counts.items() if v))


def terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def check3(run: Run, label: str, zone: str) -> None:
    """The v1 API examples (bench.v1_examples, which builds on this module: imported when it runs)."""
    from bench import v1_examples

    v1_examples.check3(run, label, zone)


# Checks 1 and 2 twice: with a node in Etc/GMT+5, as the v1 clients post it, then with that node elsewhere.
CHECKS: list[tuple[str, Callable[[Run, str, str], None], str]] = [
    ("1", check1, PLUS_ZONE), ("1b", check1, OTHER_ZONE), ("2", check2, PLUS_ZONE), ("2b", check2, OTHER_ZONE),
    ("3", check3, PLUS_ZONE),
]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--solar-protocol", type=Path, default=MIRROR, metavar="GIT_DIR",
                   help=f"a (bare) git clone of Solar Protocol (default {MIRROR})")  # fmt: skip
    p.add_argument(
        "--only",
        choices=[label for label, *_ in CHECKS],
        action="append",
        help="run only these checks (1b and 2b: the same with no '+' zone in the network)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, node files)")
    p.add_argument("--nutbridge-src", type=Path, default=REPO, metavar="DIR",
                   help="the folder holding the nutbridge package to run (default: this checkout)")  # fmt: skip
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("network namespaces and port 80 need root")
    php = shutil.which("php")
    for tool, package in ((php, "php-cli"), (shutil.which("ip"), "iproute2"), (shutil.which("openssl"), "openssl")):
        if tool is None:
            sys.exit(f"{package} is missing: apt-get install -y {package}")
    assert php is not None
    if not (args.solar_protocol / "HEAD").exists() and not (args.solar_protocol / ".git").exists():
        sys.exit(f"{args.solar_protocol}: not a git directory of Solar Protocol (--solar-protocol)")
    signal.signal(signal.SIGTERM, terminate)
    left = netns.cleanup()
    if left:
        print(f"removed leftovers of an earlier run: {', '.join(left)}")
    tmp = Path(tempfile.mkdtemp(prefix="v1-clients-"))
    run: Run | None = None
    rows: list[Row] = []
    try:
        run = Run(tmp, args.solar_protocol, php, args.nutbridge_src.resolve())
        php_version = subprocess.run([php, "-r", "echo PHP_VERSION;"], check=False, capture_output=True, text=True)
        py_version = subprocess.run([run.python, "-V"], check=False, capture_output=True, text=True)
        print(
            f"Solar Protocol {run.commit[:10]} (clients, frontend/api; api.php's hash replaced by the bench key's),"
            f" PHP {php_version.stdout}, clients on {py_version.stdout.strip()} with requests; files in {tmp}"
        )
        for label, check, zone in CHECKS:
            if args.only and label not in args.only:
                continue
            print(f"\ncheck {label}", flush=True)
            try:
                check(run, label, zone)
            except Exception as exc:  # a check that cannot finish is a result, not the end of the run
                traceback.print_exc()
                run.add(label, "the check ran to its end", "ERROR", f"{type(exc).__name__}: {exc}")
        rows = run.rows
    finally:
        if run is not None:
            run.close()
        netns.cleanup()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    table(rows)
    sys.exit(1 if any(r.result in ("DIFFERENT", "ERROR") for r in rows) else 0)


if __name__ == "__main__":
    sys.modules.setdefault("bench.v1_clients", sys.modules[__name__])  # bench.v1_examples imports this very module
    main()
