"""The switch from v1, forward: every check of the node made before anything is written (its layout, .spenv,
today's day file, rc.local's start line, an address to announce, systemctl, Apache, a free loopback port), then
setup's steps with a config pointing at v1's files, wrapped in v1's: the drop-in, the page builders' unit and
runner, Apache's proxy snippet, rc.local's line commented out, v1's jobs stopped between two writes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import shutil
import socket
import sys
from pathlib import Path

from nutbridge import setup_texts, v1node
from nutbridge.config_keys import is_loopback, parse_listen
from nutbridge.errors import ConfigError
from nutbridge.files import replace_atomically
from nutbridge.migrate.manifest import Manifest, state_dir
from nutbridge.migrate.run import run_command
from nutbridge.setup_steps import Plan, Setup, SetupError, Step
from nutbridge.v1node import V1Error, V1Node

LISTEN = "127.0.0.1:8082"  # Apache has 80 and 8080 on a v1 node
APACHE_CONF = "nutbridge-v1"
MODULES = ("proxy", "proxy_http", "headers")
PAGES = "solar-protocol-pages.service"


class Migrate(Setup):
    """One ``nutbridge migrate`` run: setup's steps with a v1 node's config, then the switch from v1."""

    def __init__(self, args: argparse.Namespace, systemctl: list[str] | None) -> None:
        super().__init__(args, systemctl)
        self.node = V1Node(Path(args.v1_root))
        self.state = state_dir(self.node.root, self.ups)
        self.apache = self.node.at("etc/apache2")
        self.listen = args.listen
        self.public_ip: str | None = args.public_ip
        self.units_dir = self.systemd_dir / f"nutbridge@{self.ups}.service.d"
        self.pages_unit = self.systemd_dir / PAGES
        self.manifest = Manifest(self.state)

    def watched(self) -> list[Path]:
        """Every file the steps may write, outside the state folder."""
        port_file, seed = self.where()
        return [
            self.config_file, seed or port_file, self.confpath / "ups.conf", self.systemd_dir / setup_texts.UNIT,
            self.systemd_dir / f"nut-driver@{self.ups}.service.d" / "nutbridge.conf",
            self.units_dir / "solar-protocol-v1.conf", self.pages_unit, self.node.rc_local,
            self.apache / "conf-available" / f"{APACHE_CONF}.conf",
        ]  # fmt: skip

    def plan(self) -> Plan:
        """Check the v1 node and everything setup checks before anything is written, then list the steps."""
        node = self.node
        for path, what in ((self.state / "manifest.json", "migrate's manifest"), (self.config_file, "its config")):
            if path.exists():
                raise SetupError(f"{self.ups} is migrated already ({what} {path} exists); "
                                 f"`nutbridge migrate {self.ups} --undo` goes back first")  # fmt: skip
        try:
            v1node.check_layout(node)
            self.env = v1node.read_spenv(node)
            self.key = v1node.network_key(self.env, node)
            self.port = v1node.http_port(v1node.read_local_json(node))
            v1node.check_today(node.data_dir, dt.date.today().isoformat())
            self.rc_text = node.rc_local.read_text(encoding="utf-8", errors="surrogateescape")
        except (V1Error, OSError) as exc:
            raise SetupError(str(exc)) from None
        lines = v1node.start_lines(self.rc_text)
        if not lines:
            raise SetupError(f"{node.rc_local} does not start {node.sp}/start.sh: stop v1's logger and runner "
                             "your own way first; migrate replaces what rc.local starts")  # fmt: skip
        self.start_line = self.rc_text.splitlines()[lines[0]].strip()
        host = self.env.get("STATIC_HOST_IP") or self.public_ip
        if not host:
            raise SetupError(f"{node.spenv} has no STATIC_HOST_IP: v1 asked a web service for this node's public "
                             "address at every round, nutbridge announces the one it is given: --public-ip ADDR "
                             "(`curl https://server.solarpowerforartists.com/?myip` shows it)")  # fmt: skip
        self.announced = v1node.public_address(host, self.port)
        if self.systemctl is None:
            raise SetupError("no systemctl: migrate replaces v1's start.sh by systemd units")
        for tool in ("a2enmod", "a2enconf", "apachectl"):
            if shutil.which(tool) is None:
                raise SetupError(f"{tool} not found: is Apache installed? (v1 serves its pages with it)")
        if not (self.apache / "conf-available").is_dir():
            raise SetupError(f"Apache's folder {self.apache}/conf-available does not exist")
        check_free(self.listen)
        return super().plan()

    def plan_config(self, plan: Plan) -> tuple[Path, Path | None]:
        """The config: setup's sample (source, port file, seed) and v1's files for the rest."""
        port_file, seed = self.where()
        text = self.render(port_file, seed)
        setup_texts.validate(text, self.config_file)
        shown = f"datalog.folder = {self.node.data_dir}\napi.listen = {self.listen}\npeers.public_ip = " \
                f"{self.announced}\npeers.network_key = (API_KEY from {self.node.spenv}; never shown)"  # fmt: skip
        write = lambda: replace_atomically(self.config_file, text.encode(), 0o600, owner=self.owner)  # noqa: E731
        plan.steps.append(Step(f"Write {self.config_file} (0600{self.owned}) for v1's files", write, shown))
        return port_file, seed

    def render(self, port_file: Path, seed: Path | None) -> str:
        node, ups = self.node, self.ups
        text = setup_texts.render_config(ups, self.url, port_file, seed).replace(
            f"# Written by `nutbridge setup {ups}`.", f"# Written by `nutbridge migrate {ups}` from {node.sp}."
        )
        text = setup_texts.replace_setting(
            text, "poll_interval", "120  # v1's logger wrote a row every 2 minutes (see [datalog])"
        )
        sections = v1node.config_sections(node, listen=self.listen, key=self.key, address=self.announced,
                                          dns_key=bool(self.env.get("DNS_KEY")), python=sys.executable)  # fmt: skip
        return f"{text}\n# ---- The Solar Protocol v1 node: its files, where v1 keeps them\n{sections}"

    def plan_systemd(self, plan: Plan) -> None:
        """The v1 switch around setup's systemd steps: files and units first, v1 stopped, nutbridge started
        (setup's steps), then Apache and the page builders."""
        node, ups = self.node, self.ups
        writable = " ".join(f"-{p}" for p in (node.data_dir, node.backend / "data"))
        shim = self.state / "solar-protocol-pages.py"
        fill = {"@UPS@": ups, "@WRITABLE@": writable, "@PYTHON@": str(node.python), "@SHIM@": str(shim),
                "@BACKEND@": str(node.backend), "@LOG@": str(node.backend / "runner.log"),
                "@LISTEN@": self.listen}  # fmt: skip
        conf = self.apache / "conf-available" / f"{APACHE_CONF}.conf"
        for dest, name, mode in (
            (self.units_dir / "solar-protocol-v1.conf", "nutbridge-v1-node.conf", 0o644),
            (shim, "solar-protocol-pages.py", 0o644),
            (self.pages_unit, PAGES, 0o644),
            (conf, f"{APACHE_CONF}.conf", 0o644),
        ):
            text = setup_texts.data_text(name)
            for old, new in fill.items():
                text = text.replace(old, new)
            plan.steps.append(Step(f"Install {dest}", functools.partial(replace_atomically, dest, text.encode(), mode)))
        history = self.state / "history"
        plan.steps.append(Step(f"Copy deviceList.json and poe.log as they are now to {history}", self.copy_history))
        plan.steps.append(Step("Run `systemctl daemon-reload`", lambda: self.run_systemctl("daemon-reload")))
        plan.steps.append(Step(f"Stop v1's start.sh at boot: comment out its line in {node.rc_local}", self.edit_rc))
        jobs = v1node.v1_jobs(node)
        shown = "; ".join(f"pid {pid}: {what}" for pid, what, _ in jobs) or "none runs now"
        plan.steps.append(Step(f"Stop v1's logger and runner between two writes: {shown}", self.stop_jobs))
        super().plan_systemd(plan)
        enable = [m for m in MODULES if not (self.apache / "mods-enabled" / f"{m}.load").exists()]
        if enable:
            plan.steps.append(Step(f"Run `a2enmod {' '.join(enable)}`", lambda: self.enable_modules(enable)))
        plan.steps.append(Step(f"Run `a2enconf {APACHE_CONF}` and `apachectl configtest`", self.enable_conf))
        plan.steps.append(Step("Run `systemctl reload apache2`", lambda: self.run_systemctl("reload", "apache2")))
        pages = functools.partial(self.run_systemctl, "enable", "--now", PAGES)
        plan.steps.append(Step(f"Run `systemctl enable --now {PAGES}`", pages))
        plan.notes.append(f"check: `nutbridge doctor {ups}`; `curl 'http://localhost/api/v1/chargecontroller.php?day=list'`"
                          f"; back to v1: `nutbridge migrate {ups} --undo`")  # fmt: skip
        if not self.env.get("DNS_KEY"):
            plan.notes.append(f"{node.spenv} has no DNS_KEY: this node updates no DNS record when it wins an election")

    def copy_history(self) -> None:
        for path in (self.node.device_list, self.node.poe_log):
            if path.is_file():
                replace_atomically(self.state / "history" / path.name, path.read_bytes(), 0o600)

    def edit_rc(self) -> None:
        path = self.node.rc_local
        if path.read_text(encoding="utf-8", errors="surrogateescape") != self.rc_text:
            raise SetupError(f"{path} changed meanwhile; run migrate again")
        lines = self.rc_text.splitlines(keepends=True)
        note = f"# `nutbridge migrate {self.ups}`: nutbridge@{self.ups} and {PAGES} do this now; --undo restores it\n"
        for i in reversed(v1node.start_lines(self.rc_text)):
            lines[i : i + 1] = [note, f"# {lines[i]}"]
        st = path.stat()
        replace_atomically(path, "".join(lines).encode("utf-8", "surrogateescape"), st.st_mode & 0o7777,
                           owner=(st.st_uid, st.st_gid) if os.geteuid() == 0 else None)  # fmt: skip

    def stop_jobs(self) -> None:
        for pid, _, folders in v1node.v1_jobs(self.node):
            try:
                v1node.stop_quietly(pid, folders)
            except V1Error as exc:
                raise SetupError(str(exc)) from None

    def enable_modules(self, modules: list[str]) -> None:
        run_command("a2enmod", *modules)
        self.manifest.data["modules"] = modules
        self.manifest.save()

    def enable_conf(self) -> None:
        run_command("a2enconf", APACHE_CONF)
        try:
            run_command("apachectl", "configtest")
        except SetupError:
            run_command("a2disconf", APACHE_CONF)  # never leave Apache a configuration it cannot start with
            raise
        self.manifest.data["conf"] = True
        self.manifest.save()


def check_free(listen: str) -> None:
    try:
        host, port = parse_listen(listen, "--listen")
        if not is_loopback(host):
            raise SetupError(f"--listen {listen}: not a loopback address; Apache is the node's front door")
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except ConfigError as exc:
        raise SetupError(str(exc)) from None
    except OSError as exc:
        raise SetupError(f"--listen {listen}: cannot listen there ({exc.strerror}); pick another port") from None
