"""What ``nutbridge migrate`` reads of a Solar Protocol v1 node (the layout of Solar Protocol's main branch on
its Pi), and the DNS gateway call v1's election made, for nutbridge's ``dns_update_command``.

Every path is taken under a root (``/`` on the node; a test folder in the tests). The node's files are read,
never written here. The keys in ``.spenv`` are never printed: errors name the file and the variable only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import re
import shlex
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nutbridge.datalog.format import HEADER, csv_line, day_file
from nutbridge.errors import ConfigError, NutbridgeError
from nutbridge.node import load_local_json

DNS_GATEWAY = "https://server.solarpowerforartists.com/"  # SolarProtocolClass.dnsURL
SERIAL_URL = "rtu:///dev/ttyUSB0?baudrate=115200"  # csv_datalogger.py's port and speed
START_SH = "/home/pi/solar-protocol/start.sh"  # as /etc/rc.local names it (v1 hard-codes /home/pi)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MIN_KEY, MAX_KEY = 8, 256  # [peers] network_key's bounds


class V1Error(NutbridgeError):
    """The v1 layout is not what migrate knows, or lacks something it needs; nothing was changed."""


@dataclass(frozen=True)
class V1Node:
    """A v1 node's files under ``root``."""

    root: Path

    def at(self, relative: str) -> Path:
        return self.root / relative

    @property
    def sp(self) -> Path:
        return self.at("home/pi/solar-protocol")

    @property
    def local(self) -> Path:
        return self.at("home/pi/local")

    @property
    def local_json(self) -> Path:
        return self.local / "local.json"

    @property
    def spenv(self) -> Path:
        return self.local / ".spenv"

    @property
    def peer_data(self) -> Path:
        return self.local / "data"  # getRemoteData.py's copies of the peers' data

    @property
    def data_dir(self) -> Path:
        return self.sp / "charge-controller/data"

    @property
    def logger(self) -> Path:
        return self.sp / "charge-controller/csv_datalogger.py"

    @property
    def backend(self) -> Path:
        return self.sp / "backend"

    @property
    def device_list(self) -> Path:
        return self.backend / "data/deviceList.json"

    @property
    def poe_log(self) -> Path:
        return self.backend / "data/poe.log"

    @property
    def rc_local(self) -> Path:
        return self.at("etc/rc.local")

    @property
    def python(self) -> Path:
        """The interpreter start.sh runs v1's scripts with: its venv's, else Debian's python3."""
        venv = self.sp / ".venv/bin/python"
        return venv if venv.exists() else self.at("usr/bin/python3")

    def required(self) -> list[tuple[Path, str]]:
        """The files migrate reads or replaces, each with what it is."""
        return [
            (self.local_json, "the node's identity (local.json)"),
            (self.spenv, "the node's keys (.spenv, read by backend/get_env.sh)"),
            (self.sp / "start.sh", "v1's start script"),
            (self.logger, "v1's data logger"),
            (self.backend / "runner.py", "v1's backend runner"),
            (self.backend / "core/clientPostIP.py", "v1's IP announcer"),
            (self.backend / "core/solarProtocol.py", "v1's point-of-entry election"),
            (self.data_dir, "v1's data folder (the day files)"),
            (self.rc_local, "/etc/rc.local, which starts v1's start.sh"),
        ]

    def history(self) -> list[Path]:
        """The files that hold the node's history: migrate and --undo never write them."""
        found = [p for p in (self.local_json, self.device_list, self.poe_log) if p.is_file()]
        for folder in (self.data_dir, self.peer_data):
            if folder.is_dir():
                found += sorted(p for p in folder.iterdir() if p.is_file())
        return found


def check_layout(node: V1Node) -> None:
    """V1Error naming the first file of the layout that is missing."""
    for path, what in node.required():
        if not path.exists():
            raise V1Error(f"no Solar Protocol v1 node here: {path} ({what}) is missing")


def parse_spenv(text: str, path: Path) -> dict[str, str]:
    """``KEY=VALUE`` and ``export KEY=VALUE`` lines, quoted or not, as bash reads them for get_env.sh; the
    last assignment wins. V1Error for a line that is none of these (naming its number, never its text)."""
    found: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, equals, value = line.partition("=")
        try:
            words = shlex.split(value, comments=True)
        except ValueError:
            words = None
        if not equals or not NAME.match(name) or words is None or len(words) > 1:
            raise V1Error(f"{path}, line {number}: not a KEY=VALUE line; fix it so get_env.sh reads it too")
        found[name] = words[0] if words else ""
    return found


def read_spenv(node: V1Node) -> dict[str, str]:
    try:
        text = node.spenv.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise V1Error(f"cannot read {node.spenv}: {exc.strerror}; run it as root") from exc
    return parse_spenv(text, node.spenv)


def network_key(env: dict[str, str], node: V1Node) -> str:
    """API_KEY, the network's key; V1Error when it is missing or out of nutbridge's bounds."""
    key = env.get("API_KEY", "")
    if not key:
        raise V1Error(
            f"{node.spenv} has no API_KEY, the network's key (v1 announces with it): set it with "
            f"`bash {node.backend}/set_env.sh API_KEY ...` first"
        )
    if not MIN_KEY <= len(key) <= MAX_KEY:
        raise V1Error(f"{node.spenv}: API_KEY is {len(key)} characters; nutbridge takes {MIN_KEY}-{MAX_KEY}")
    return key


def read_local_json(node: V1Node) -> dict[str, Any]:
    try:
        return load_local_json(node.local_json)
    except ConfigError as exc:
        raise V1Error(str(exc)) from None


def http_port(local: dict[str, Any]) -> str:
    """local.json's httpPort as clientPostIP appends it to the address it announces ('' when unset)."""
    port = str(local.get("httpPort", "") or "").strip()
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise V1Error(f"local.json: httpPort {port!r} is not a port number")
    return "" if port in ("", "80") else port


def public_address(host: str, port: str) -> str:
    """The address peers reach this node at: ``host`` with v1's httpPort appended (unless it names one)."""
    if not port or host.startswith("[") or host.count(":") == 1:  # none to add, or it names its port
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def wlan0_mac(node: V1Node) -> str | None:
    """The MAC v1 announces (wlan0's, 'even if using ethernet'); None without wlan0."""
    try:
        mac = node.at("sys/class/net/wlan0/address").read_text().strip().lower()
    except OSError:
        return None
    return mac if re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", mac) and mac != "00:00:00:00:00:00" else None


def start_lines(text: str) -> list[int]:
    """Indexes of the lines of rc.local that run v1's start.sh (comments aside)."""
    return [i for i, line in enumerate(text.splitlines(keepends=True)) if line.lstrip()[:1] != "#" and START_SH in line]


def check_today(folder: Path, today: str) -> Path | None:
    """Today's day file, when v1 began it; V1Error when nutbridge cannot append to it: rows go in v1's column
    order under the header that is there, so it must be v1's header exactly."""
    path = day_file(folder, dt.date.fromisoformat(today))
    if not path.exists():
        return None
    with path.open("rb") as f:
        first = f.readline()
    if first.rstrip(b"\r\n") != csv_line(HEADER).rstrip("\n").encode():
        shown = first[:120].decode("utf-8", "replace").rstrip()
        raise V1Error(
            f"today's day file {path} begins with {shown!r}, not v1's header; nutbridge appends rows in v1's "
            f"column order, which would not match it. Move it aside (it stays out of the API) or migrate tomorrow"
        )
    return path


def config_sections(node: V1Node, *, listen: str, key: str, address: str, dns_key: bool, python: str) -> str:
    """nutbridge's [datalog], [api], [node] and [peers] for this node: v1's own files, where they are."""
    mac = wlan0_mac(node)
    command = [python, "-m", "nutbridge.v1node", "dns", "--spenv", str(node.spenv), "{ip}"]
    s = functools.partial(json.dumps, ensure_ascii=False)  # a TOML basic string (JSON's escapes are TOML's)
    dns = (
        f"dns_update_command = [{', '.join(s(a) for a in command)}]  # v1's DNS gateway call; DNS_KEY read from .spenv"
        if dns_key
        else "# no DNS_KEY in .spenv: the election updates no DNS record"
    )
    return f"""[datalog]
# v1's day files; each poll adds a row (so poll_interval keeps v1's 2 minutes: peers fetch whole days)
folder = {s(str(node.data_dir))}
retention_days = 0                  # keep every day, as v1 did
[api]
listen = {s(listen)}  # Apache proxies Solar Protocol's API paths here
trusted_proxies = ["127.0.0.1/32", "::1/128"]  # Apache: a peer is the address it forwards for
[node]
local_json = {s(str(node.local_json))}
[peers]
network_key = {s(key)}  # API_KEY in {node.spenv}
device_list = {s(str(node.device_list))}
poe_log = {s(str(node.poe_log))}
public_ip = {s(address)}  # STATIC_HOST_IP (or --public-ip), with local.json's httpPort as v1 adds it
{f"mac = {s(mac)}  # wlan0's, as v1 announces it" if mac else "# no wlan0: the first interface's MAC"}
peer_expiry_days = 3650             # v1 never forgets a node
announce = true
election = true
{dns}
"""


# --- v1's running jobs ------------------------------------------------------------------------------------------

QUIET = 3.0  # seconds a job's folders must be unchanged before it is stopped: it is not writing then
PATIENCE = 60.0  # seconds to wait for that before giving up


def v1_jobs(node: V1Node, proc: Path = Path("/proc")) -> list[tuple[int, str, list[Path]]]:
    """The running logger and backend runner of this node, by their exact script path (as start.sh starts
    them: ``python /home/pi/solar-protocol/backend``): (pid, what, the folders it writes)."""
    jobs = {
        str(node.logger): ("v1's data logger csv_datalogger.py", [node.data_dir]),
        str(node.backend): ("v1's backend runner", [node.peer_data, node.backend / "data"]),
    }
    jobs[str(node.backend / "__main__.py")] = jobs[str(node.backend / "runner.py")] = jobs[str(node.backend)]
    found = []
    for entry in sorted(proc.iterdir(), key=lambda e: e.name) if proc.is_dir() else []:
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if not argv or not os.path.basename(argv[0]).startswith("python"):
            continue
        script = next((a for a in argv[1:] if a and not a.startswith("-")), "")
        job = jobs.get(os.path.normpath(script)) if script else None
        if job is not None:
            found.append((int(entry.name), *job))
    return found


def newest_change(folders: list[Path]) -> float:
    """The newest modification time of the folders and the files directly in them (0 when none)."""
    times = [0.0]
    for folder in folders:
        try:
            times.append(folder.stat().st_mtime)
            times += [p.stat().st_mtime for p in folder.iterdir()]
        except OSError:
            continue
    return max(times)


def stop_quietly(pid: int, folders: list[Path]) -> None:
    """Stop a v1 job between two writes: SIGSTOP, then SIGKILL once nothing in ``folders`` changed for QUIET
    seconds (else SIGCONT and try again). v1's logger rewrites the whole day file at each sample: a kill in
    the middle would leave it cut short. OSError or V1Error when it cannot be done."""
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return
        now = time.time()
        if not now - QUIET < newest_change(folders) <= now + 1:
            break
        os.kill(pid, signal.SIGCONT)
        if time.monotonic() > deadline:
            raise V1Error(f"pid {pid} kept writing in {folders[0]} for {PATIENCE:g} s; stop it yourself, then rerun")
        time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    while time.monotonic() < deadline + 10:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):  # dead; its parent reaps it
            return
        time.sleep(0.1)
    raise V1Error(f"pid {pid} did not end after SIGKILL")


# --- the DNS gateway call: nutbridge's dns_update_command on a migrated node -----------------------------------


def dns_update(spenv: Path, ip: str, gateway: str, timeout: float) -> tuple[bool, str]:
    """GET ``gateway?ip=IP&key=DNS_KEY`` as SolarProtocolClass.updateDNS does; (done, what to say). The key is
    read from ``spenv`` here, so it never appears on a command line; it is never printed."""
    try:
        env = parse_spenv(spenv.read_text(encoding="utf-8", errors="replace"), spenv)
    except (OSError, V1Error) as exc:
        return False, f"cannot read {spenv}: {getattr(exc, 'strerror', None) or exc}"
    key = env.get("DNS_KEY", "")
    if not key:
        return False, f"{spenv} has no DNS_KEY"
    url = f"{gateway}?{urllib.parse.urlencode({'ip': ip, 'key': key})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (https, or a test's http)
            body = answer.read(4096).decode("utf-8", "replace")
    except OSError as exc:  # URLError and TimeoutError are OSErrors
        reason = getattr(exc, "reason", None) or exc
        return False, f"the DNS gateway did not answer: {str(reason).replace(key, '***')}"
    body = body.replace(key, "***")
    if "not verified" in body or re.search(r"<ErrCount>[1-9]", body):
        return False, f"the DNS gateway refused: {' '.join(body.split())[:200]}"
    return True, f"the DNS gateway set the network's address to {ip}"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m nutbridge.v1node dns", description="v1's DNS gateway call")
    p.add_argument("command", choices=["dns"])
    p.add_argument("--spenv", required=True, type=Path, help="the .spenv that holds DNS_KEY")
    p.add_argument("--gateway", default=DNS_GATEWAY, help=f"the DNS gateway (default {DNS_GATEWAY})")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds (default 20)")
    p.add_argument("ip")
    args = p.parse_args(argv)
    done, said = dns_update(args.spenv, args.ip, args.gateway, args.timeout)
    print(said, file=sys.stdout if done else sys.stderr)
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
