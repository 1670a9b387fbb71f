"""``nutbridge migrate``, run as an operator would on a Solar Protocol v1 node laid out in a folder as on its Pi
(``--v1-root``), in private NUT folders, with stand-ins for systemctl, a2enmod, a2enconf, apachectl and
systemd-run that log their arguments: the config points at v1's files, a daemon on it serves and extends them,
--undo puts every changed file back byte for byte, and the node's history is never written."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import http.server
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nutbridge.config import load
from nutbridge.v1node import V1Error, parse_spenv
from tests.conftest import need
from tests.helpers import free_port

UPS = "solar"
KEY = "network-key-0123456789"
DNS_KEY = "dns-key-9876543210"
MAC = "b8:27:eb:12:34:56"
HEADER = (
    "datetime,PV voltage,PV current,PV power L,PV power H,battery voltage,battery current,battery power L,"
    "battery power H,load voltage,load current,load power,battery percentage\n"
)
TOOLS = ("systemctl", "a2enmod", "a2dismod", "a2enconf", "a2disconf", "apachectl", "systemd-run")
RC_LOCAL = """#!/bin/bash
#
# This script is executed at the end of each multiuser runlevel.

# Print the IP address
_IP=$(hostname -I) || true
if [ "$_IP" ]; then
  printf "My IP address is %s\\n" "$_IP"
fi

sudo /bin/bash /home/pi/solar-protocol/start.sh > /home/pi/solar-protocol/start.log 2>&1 &

exit 0
"""
# v1's runner.py, cut to what the page runner relies on: it imports its jobs from core and runs each per round
RUNNER = """from core import clientPostIP
from core import solarProtocol
from core import getRemoteData
def runSP():
    clientPostIP.runClientPostIP()
    solarProtocol.runSP()
    getRemoteData.run()
"""


def pandas_rows(day: dt.date, count: int) -> str:
    """Rows as v1's logger writes them (pandas: floats as 0.0, microsecond timestamps), two minutes apart."""
    start = dt.datetime.combine(day, dt.time(7, 40, 12, 694530))
    return "".join(
        f"{start + dt.timedelta(minutes=2 * i)},13.35,0.08,1.09,0.0,12.15,0.09,1.09,0.0,12.15,0.18,2.18,0.38\n"
        for i in range(count)
    )


@dataclass
class Node:
    """A v1 node under ``root`` (home/pi/..., etc/...), NUT's folders and a log of the commands run."""

    tmp: Path
    root: Path
    calls: Path

    @property
    def sp(self) -> Path:
        return self.root / "home/pi/solar-protocol"

    @property
    def data(self) -> Path:
        return self.sp / "charge-controller/data"

    @property
    def today(self) -> Path:
        return self.data / f"tracerData{dt.date.today()}.csv"

    @property
    def config(self) -> Path:
        return self.tmp / "nut/etc" / f"nutbridge-{UPS}.toml"

    @property
    def state(self) -> Path:
        return self.root / "var/lib/nutbridge" / f"migrate-{UPS}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{self.tmp / 'bin'}:{os.environ['PATH']}",
            "NUT_CONFPATH": str(self.tmp / "nut/etc"),
            "NUT_STATEPATH": str(self.tmp / "nut/state"),
            "NUTBRIDGE_RUNPATH": str(self.tmp / "nut/run"),
            "NUTBRIDGE_SYSTEMCTL": "",
        }

    def migrate(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "nutbridge", "migrate", UPS, "--v1-root", str(self.root), *args]
        if "--listen" not in args:
            argv += ["--listen", f"127.0.0.1:{free_port()}"]
        done = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=self.env(), timeout=120, check=False
        )
        for secret in (KEY, DNS_KEY):
            assert secret not in done.stdout + done.stderr
        return done

    def commands(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def history(self) -> dict[str, str]:
        """sha256 of every file of the node's history: day files, device list, poe.log, local.json, peer data."""
        files = [*self.data.iterdir(), *(self.root / "home/pi/local/data").iterdir()]
        files += [self.sp / "backend/data/deviceList.json", self.sp / "backend/data/poe.log"]
        files.append(self.root / "home/pi/local/local.json")
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    def tree(self) -> dict[str, tuple[int, bytes]]:
        """Every file and folder under the node and NUT's folders (mode and content), migrate's state aside."""
        found = {}
        for top in (self.root, self.tmp / "nut"):
            for path in sorted([top, *top.rglob("*")]):
                if "var/lib/nutbridge" in str(path) or path.name == "runner.log":
                    continue
                content = path.read_bytes() if path.is_file() else b""
                found[str(path)] = (path.lstat().st_mode, content)
        return found


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def node(tmp_path: Path) -> Node:
    """A node as Solar Protocol's main branch leaves it on a Pi, with a week of history and a day file begun
    today by v1's logger."""
    root = tmp_path / "pi"
    sp, local = root / "home/pi/solar-protocol", root / "home/pi/local"
    local_json = {"name": "Test Node", "description": "A node on a roof.", "location": "A neighbourhood",
                  "city": "A city", "country": "A country", "lat": "40.65 N", "long": "73.94 W", "bgColor": "Olive",
                  "font": "Monaco", "pvWatts": "50", "pvVolts": "12", "httpPort": ""}  # fmt: skip
    write(local / "local.json", json.dumps(local_json, indent=2), 0o666)
    write(local / ".spenv", f'export API_KEY={KEY}\nexport DNS_KEY="{DNS_KEY}"\nexport STATIC_HOST_IP=203.0.113.5\n')
    write(local / "data/testnode.json", '{"header": [], "data": []}')
    write(local / "data/peer.json", '{"header": [], "data": []}')
    write(sp / "start.sh", "#!/bin/bash\nsleep 60\nsource /home/pi/solar-protocol/.venv/bin/activate\n")
    write(sp / "charge-controller/csv_datalogger.py", "import time\nwhile True:\n    time.sleep(60)\n")
    write(sp / "backend/__main__.py", "import time\nwhile True:\n    time.sleep(60)\n")
    write(sp / "backend/runner.py", RUNNER)
    write(sp / "backend/core/__init__.py", "")
    write(sp / "backend/core/clientPostIP.py", "def runClientPostIP():\n    print('v1 clientPostIP ran')\n")
    write(sp / "backend/core/solarProtocol.py", "def runSP():\n    print('v1 solarProtocol ran')\n")
    write(sp / "backend/core/getRemoteData.py", "def run():\n    print('getRemoteData ran')\n")
    devices = [
        {"mac": MAC, "ip": "203.0.113.5", "time stamp": "1700000000.5759263", "name": "Test Node",
         "tz": "UTC", "log": ["2026-01-02 12:00:02.740450"]},
        {"mac": "b8:27:eb:00:00:07", "ip": "198.51.100.7", "time stamp": "1700000100.1", "name": "Peer",
         "tz": "UTC", "log": [""]},
    ]  # fmt: skip
    write(sp / "backend/data/deviceList.json", json.dumps(devices, indent=4), 0o666)
    write(sp / "backend/data/poe.log", "INFO:root:2026-01-02 12:00:02.740450\nINFO:root:2026-01-03 12:10:02.1\n")
    today = dt.date.today()
    for back in (400, 2, 1):
        day = today - dt.timedelta(days=back)
        write(sp / f"charge-controller/data/tracerData{day}.csv", HEADER + pandas_rows(day, 5))
    write(sp / "charge-controller/data/tracerData2020-08-20.json", "[]")  # the old JSON logger's
    begun = write(sp / f"charge-controller/data/tracerData{today}.csv", HEADER + pandas_rows(today, 3))
    os.utime(begun, (time.time() - 60, time.time() - 60))  # written by the logger a minute ago
    write(root / "etc/rc.local", RC_LOCAL, 0o755)
    write(root / "etc/apache2/mods-enabled/headers.load", "LoadModule headers_module mod_headers.so\n")
    (root / "etc/apache2/conf-available").mkdir()
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "var/lib").mkdir(parents=True)
    write(root / "sys/class/net/wlan0/address", MAC + "\n")
    (sp / ".venv/bin").mkdir(parents=True)
    (sp / ".venv/bin/python").symlink_to(sys.executable)  # start.sh's venv
    for folder in ("etc", "state", "run"):
        (tmp_path / "nut" / folder).mkdir(parents=True)
    write(tmp_path / "nut/etc/ups.conf", "# ups.conf\nmaxretry = 3\n", 0o640)
    calls = tmp_path / "calls.log"
    for tool in TOOLS:
        write(tmp_path / "bin" / tool, f'#!/bin/sh\necho "{tool} $*" >> {calls}\n', 0o755)
    return Node(tmp=tmp_path, root=root, calls=calls)


def test_migrate_points_nutbridge_at_v1_files_and_undo_puts_back_each_change(node: Node) -> None:
    before, history = node.tree(), node.history()
    listen = f"127.0.0.1:{free_port()}"
    done = node.migrate("--yes", "--listen", listen)
    assert done.returncode == 0, done.stdout + done.stderr
    assert node.history() == history

    config = load(node.config)
    assert stat.S_IMODE(node.config.stat().st_mode) == 0o600
    assert config.datalog.folder == node.data
    assert config.datalog.retention_days == 0  # years of v1 history are kept
    assert config.api.listen == ("127.0.0.1", int(listen.rsplit(":", 1)[1]))
    assert config.node.local_json == node.root / "home/pi/local/local.json"
    assert config.peers.network_key == KEY
    assert config.peers.device_list == node.sp / "backend/data/deviceList.json"
    assert config.peers.poe_log == node.sp / "backend/data/poe.log"
    assert (config.peers.public_ip, config.peers.mac) == ("203.0.113.5", MAC)
    assert config.peers.announce and config.peers.election
    assert config.peers.dns_update_command[-3:] == ("--spenv", str(node.root / "home/pi/local/.spenv"), "{ip}")
    assert DNS_KEY not in node.config.read_text()
    assert config.monitor.poll_interval == 120  # v1's cadence: peers fetch whole day files

    rc_local = (node.root / "etc/rc.local").read_text()
    assert "\n# sudo /bin/bash /home/pi/solar-protocol/start.sh" in rc_local
    assert all(line.startswith("#") for line in rc_local.splitlines() if "start.sh" in line)
    apache = (node.root / "etc/apache2/conf-available/nutbridge-v1.conf").read_text()
    for route in ("/api/v1/api.php", "/api/v1/chargecontroller.php", "/api/v1/opendata.php", "/api/v2/opendata.php"):
        assert f'<Location "{route}">\n    ProxyPass "http://{listen}{route}"\n</Location>' in apache
    assert apache.count("ProxyPass ") == 5  # those and /api/election, nothing else
    pages = (node.root / "etc/systemd/system/solar-protocol-pages.service").read_text()
    assert f"{node.state}/solar-protocol-pages.py {node.sp}/backend {UPS}" in pages
    drop_in = node.root / f"etc/systemd/system/nutbridge@{UPS}.service.d/solar-protocol-v1.conf"
    assert f"ReadWritePaths=-{node.data} -{node.sp}/backend/data\n" in drop_in.read_text()
    assert (node.state / "history/poe.log").read_bytes() == (node.sp / "backend/data/poe.log").read_bytes()
    commands = node.commands()
    for expected in ("a2enmod proxy proxy_http", "a2enconf nutbridge-v1", "apachectl configtest",
                     "systemctl reload apache2", "systemctl enable --now solar-protocol-pages.service",
                     f"systemctl enable nutbridge@{UPS}", "systemctl daemon-reload"):  # fmt: skip
        assert expected in commands
    assert commands.index("systemctl daemon-reload") < commands.index(f"systemctl enable nutbridge@{UPS}")
    assert KEY not in (node.state / "manifest.json").read_text()

    again = node.migrate("--yes")
    assert again.returncode == 1 and "migrated already" in again.stderr

    node.calls.unlink()
    undone = node.migrate("--undo", "--yes")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert node.tree() == before  # every file put back byte for byte, mode included; nothing left behind
    assert node.history() == history
    commands = node.commands()
    assert commands[:5] == ["systemctl disable --now solar-protocol-pages.service", "a2disconf -q nutbridge-v1",
                            "a2dismod -q proxy_http", "a2dismod -q proxy", "systemctl reload apache2"]  # fmt: skip
    assert f"systemctl disable --now nutbridge@{UPS} nut-driver@{UPS}" in commands
    start = next(c for c in commands if c.startswith("systemd-run"))
    assert start.endswith("/bin/sh -c sudo /bin/bash /home/pi/solar-protocol/start.sh > "
                          "/home/pi/solar-protocol/start.log 2>&1 &")  # fmt: skip
    assert not node.state.exists() and list(node.state.parent.glob(f"migrate-{UPS}.undone-*"))
    assert node.migrate("--undo", "--yes").returncode == 1  # nothing left to undo


def test_dry_run_changes_nothing(node: Node) -> None:
    before = node.tree()
    done = node.migrate("--dry-run")
    assert done.returncode == 0, done.stderr
    assert "would: Write" in done.stdout and "would: Run `a2enconf nutbridge-v1`" in done.stdout
    assert "never shown" in done.stdout
    assert node.tree() == before and node.commands() == [] and not node.state.exists()


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda n: (n.sp / "start.sh").unlink(), "start.sh (v1's start script) is missing"),
        (lambda n: write(n.root / "home/pi/local/.spenv", "export DNS_KEY=x\n"), "has no API_KEY"),
        (lambda n: write(n.today, "datetime,solarVoltage\n2020-08-03 07:40:12.1,13.3\n"), "not v1's header"),
        (lambda n: write(n.root / "home/pi/local/.spenv", f"API_KEY={KEY}\n"), "--public-ip"),
        (lambda n: write(n.root / "etc/rc.local", "#!/bin/sh\nexit 0\n"), "does not start"),
        (lambda n: write(n.config, "[nut]\n"), "migrated already"),
    ],
)
def test_what_cannot_be_migrated_is_refused_before_any_change(node: Node, change: object, said: str) -> None:
    change(node)  # type: ignore[operator]
    before = node.tree()
    done = node.migrate("--yes")
    assert done.returncode == 1 and said in done.stderr and "Nothing was changed" in done.stderr
    assert node.tree() == before and node.commands() == []


def test_a_file_changed_after_migrate_is_kept_by_undo(node: Node) -> None:
    assert node.migrate("--yes").returncode == 0
    ups_conf = node.tmp / "nut/etc/ups.conf"
    ups_conf.write_text(ups_conf.read_text() + "# edited by hand\n")
    undone = node.migrate("--undo", "--yes")
    assert undone.returncode == 1  # the operator has a file to look at
    assert "ups.conf changed since migrate: kept as it is" in undone.stdout
    assert ups_conf.read_text().endswith("# edited by hand\n")
    assert "solar-protocol/start.sh >" in (node.root / "etc/rc.local").read_text().splitlines()[-3]
    assert node.state.exists()  # its backups are still needed


def test_a_migrate_that_fails_half_way_is_undone_from_its_manifest(node: Node) -> None:
    before = node.tree()
    write(node.tmp / "bin/apachectl", "#!/bin/sh\necho 'Syntax error on line 3' >&2\nexit 1\n", 0o755)
    done = node.migrate("--yes")
    assert done.returncode == 1 and "Syntax error on line 3" in done.stderr
    assert "a2disconf nutbridge-v1" in node.commands()  # Apache is never left a configuration it cannot load
    assert "not done: Run `systemctl reload apache2`" in done.stdout
    node.calls.unlink()
    undone = node.migrate("--undo", "--yes")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    commands = node.commands()
    assert "a2dismod -q proxy_http" in commands and "a2disconf -q nutbridge-v1" not in commands  # never left on
    assert any(c.startswith("systemd-run") for c in commands)  # v1 was stopped, so it is started again
    assert node.tree() == before


def test_running_v1_jobs_are_stopped_between_writes(node: Node) -> None:
    jobs = [
        subprocess.Popen([sys.executable, "-u", str(node.sp / "charge-controller/csv_datalogger.py")]),
        subprocess.Popen([sys.executable, str(node.sp / "backend")]),
    ]
    try:
        done = node.migrate("--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        assert all(job.wait(timeout=30) == -signal.SIGKILL for job in jobs)
        assert f"pid {jobs[0].pid}: v1's data logger" in done.stdout
    finally:
        for job in jobs:
            if job.poll() is None:
                job.kill()
                job.wait()


def test_the_page_runner_runs_v1s_page_builders_without_its_announcer_and_election(node: Node) -> None:
    assert node.migrate("--yes").returncode == 0
    ran = subprocess.run(
        [sys.executable, str(node.state / "solar-protocol-pages.py"), str(node.sp / "backend"), UPS],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == [f"runClientPostIP: done by nutbridge@{UPS}", f"runSP: done by nutbridge@{UPS}",
                                       "getRemoteData ran"]  # fmt: skip


def test_the_units_migrate_installs_load_as_systemd_loads_them(node: Node) -> None:
    need(shutil.which("systemd-analyze") is not None, "systemd-analyze (Debian package systemd)")
    assert node.migrate("--yes").returncode == 0
    units = node.root / "etc/systemd/system"
    for unit in (f"nutbridge@{UPS}.service", "solar-protocol-pages.service"):  # the first with migrate's drop-in
        done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(units / unit)],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        problems = [line for line in done.stderr.splitlines() if "nut-driver" not in line]  # NUT's own units
        assert done.returncode == 0 and problems == [], done.stderr
    assert f"ExecStart={node.sp}/.venv/bin/python -u " in (units / "solar-protocol-pages.service").read_text()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def test_a_daemon_on_the_migrated_config_serves_v1s_day_files_and_appends_to_todays(
    midday_zone: str, node: Node
) -> None:
    # about noon (midday_zone, before the node is made): v1's rows of 07:40 are before the daemon's, as on a real node
    port = free_port()
    assert node.migrate("--yes", "--listen", f"127.0.0.1:{port}").returncode == 0
    began = node.today.read_bytes()
    old = sorted(p.name for p in node.data.glob("tracerData*.csv"))
    daemon = subprocess.Popen(
        [sys.executable, "-m", "nutbridge", "-c", str(node.config), "--simulate", "--poll-interval", "0.2",
         "--flush-interval", "0", "--nut-version", "2.8.1"],
        env=node.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/v1/chargecontroller.php"
    try:
        for _ in range(600):  # until it listens and has appended two rows; a guard against a hang, not a timing
            with contextlib.suppress(OSError):
                if node.today.read_bytes().count(b"\n") >= began.count(b"\n") + 2 and get(f"{url}?day=len"):
                    break
            assert daemon.poll() is None, daemon.communicate()[1].decode()
            time.sleep(0.1)
        assert json.loads(get(f"{url}?day=list")) == old  # the old logger's .json stays out, as nutbridge does
        assert json.loads(get(f"{url}?line=head")) == HEADER.strip().split(",")
        assert int(get(f"{url}?line=len")) >= 5
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err.decode()
    grown = node.today.read_bytes()
    assert grown.startswith(began)  # v1's rows untouched, the new ones after them
    new_rows = grown[len(began) :].decode().splitlines()
    assert len(new_rows) >= 2 and all(len(row.split(",")) == 13 for row in new_rows)
    assert sorted(p.name for p in node.data.glob("tracerData*.csv")) == old  # the 400-day-old file is kept


APACHE_MODULES = Path("/usr/lib/apache2/modules")


def test_apache_proxies_the_api_paths_to_the_daemon_and_serves_the_rest(
    node: Node, request: pytest.FixtureRequest
) -> None:
    """Debian's Apache, on a loopback port with a private configuration that includes the migrated snippet."""
    apache2 = shutil.which("apache2", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    need(apache2 is not None, "Debian's apache2-bin (scripts/test.sh installs it)")
    assert apache2 is not None
    port, web = free_port(), free_port()
    assert node.migrate("--yes", "--listen", f"127.0.0.1:{port}").returncode == 0
    daemon = subprocess.Popen(
        [sys.executable, "-m", "nutbridge", "-c", str(node.config), "--no-poll"],
        env=node.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    httpd = Path(tempfile.mkdtemp(prefix="nutbridge-apache-"))  # Apache's user must reach the pages: not tmp_path
    request.addfinalizer(lambda: shutil.rmtree(httpd))
    write(httpd / "frontend/index.html", "v1 page")
    write(httpd / "frontend/api/v1/other.php", "left to Apache")
    modules = "".join(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so\n"
                      for m in ("mpm_event", "authz_core", "proxy", "proxy_http", "headers"))  # fmt: skip
    user = "User nobody\nGroup nogroup\n" if os.geteuid() == 0 else ""
    conf = write(
        httpd / "httpd.conf",
        f"""{modules}{user}ServerRoot {httpd}
ServerName localhost
Listen 127.0.0.1:{web}
PidFile {httpd}/httpd.pid
ErrorLog {httpd}/error.log
DocumentRoot {httpd}/frontend
<Directory {httpd}/frontend>
    Require all granted
</Directory>
Include {node.root}/etc/apache2/conf-available/nutbridge-v1.conf
""",
    )
    httpd.chmod(0o755)
    apache = subprocess.Popen([apache2, "-f", str(conf), "-DFOREGROUND"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)  # fmt: skip
    base = f"http://127.0.0.1:{web}"
    try:
        for _ in range(300):  # until both listen; a guard against a hang, not a timing
            with contextlib.suppress(OSError):
                get(f"http://127.0.0.1:{port}/api/v1/chargecontroller.php?day=len")
                get(f"{base}/index.html")
                break
            assert daemon.poll() is None, daemon.communicate()[1].decode()
            assert apache.poll() is None, apache.communicate()[1].decode()
            time.sleep(0.1)
        with urllib.request.urlopen(f"{base}/api/v1/chargecontroller.php?day=list", timeout=10) as answer:
            assert json.loads(answer.read()) == sorted(p.name for p in node.data.glob("tracerData*.csv"))
            assert answer.headers["Access-Control-Allow-Origin"] == "*"
        assert get(f"{base}/api/v1/chargecontroller.php?line=len") == "3"
        posted = urllib.request.urlopen(f"{base}/api/v1/api.php", data=b"api_key=wrong&ip=192.0.2.9", timeout=10)
        assert posted.read() == b"Wrong API Key provided."  # the peer protocol's POST goes through too
        assert get(f"{base}/api/v1/other.php") == "left to Apache"
        assert get(f"{base}/index.html") == "v1 page"
    finally:
        apache.terminate()
        daemon.send_signal(signal.SIGTERM)
        apache.communicate(timeout=60)
        daemon.communicate(timeout=60)


def test_parse_spenv_reads_what_bash_reads_and_never_shows_a_value() -> None:
    text = "# keys\nexport API_KEY=abc123456\nDNS_KEY='q w'\n  export STATIC_HOST_IP=\"203.0.113.5\" # tunnel\n\n"
    assert parse_spenv(text, Path(".spenv")) == {"API_KEY": "abc123456", "DNS_KEY": "q w",
                                                 "STATIC_HOST_IP": "203.0.113.5"}  # fmt: skip
    with pytest.raises(V1Error, match=r"line 2") as caught:
        parse_spenv("API_KEY=abc\nsecret-value-here\n", Path(".spenv"))
    assert "secret-value-here" not in str(caught.value)


@dataclass
class Gateway:
    """A stand-in for v1's DNS gateway: records each query, answers ``reply``."""

    url: str
    queries: list[str]
    reply: list[bytes]


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    queries: list[str] = []
    reply = [b"<ErrCount>0</ErrCount>"]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            queries.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(reply[0])

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Gateway(f"http://127.0.0.1:{server.server_address[1]}/", queries, reply)
    finally:
        server.shutdown()
        server.server_close()


def test_the_dns_command_calls_v1s_gateway_with_the_key_from_spenv(node: Node, gateway: Gateway) -> None:
    spenv = node.root / "home/pi/local/.spenv"

    def dns(ip: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "nutbridge.v1node", "dns", "--spenv", str(spenv), "--gateway", gateway.url, ip]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert DNS_KEY not in done.stdout + done.stderr and DNS_KEY not in " ".join(argv)
        return done

    done = dns("203.0.113.5")
    assert done.returncode == 0, done.stderr
    assert gateway.queries == [f"/?ip=203.0.113.5&key={DNS_KEY}"]  # as SolarProtocolClass.updateDNS builds it
    gateway.reply[0] = b"api key not verified"
    refused = dns("203.0.113.5")
    assert refused.returncode == 1 and "refused" in refused.stderr
    write(spenv, f"export API_KEY={KEY}\n")
    assert dns("203.0.113.5").returncode == 1
