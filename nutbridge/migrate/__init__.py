"""``nutbridge migrate UPS``: switch a running Solar Protocol v1 node to nutbridge in one step, and back.

It does what ``nutbridge setup`` does (the config, the port file's seed, ups.conf, the units), with a config that
points at v1's own files where they are (day files, device list, poe.log, local.json, the key in .spenv); then
replaces v1's data logger, IP announcer and election by nutbridge@UPS, keeps v1's page builders running
(solar-protocol-pages.service: runner.py without those two jobs), and has Apache proxy Solar Protocol's API
paths to nutbridge. Every file it changes is backed up first and listed in a manifest; ``--undo`` puts each
back and starts v1 again. The node's history is never written. Exit status as ``setup``: 0, 1, 2, 78.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from nutbridge import setup_cmd, system, v1node
from nutbridge.config import is_loopback, parse_listen
from nutbridge.errors import ConfigError
from nutbridge.files import describe, replace_atomically
from nutbridge.setup_cmd import EX_CONFIG, EX_FAIL, EX_OK, EX_USAGE, Plan, Setup, SetupError, Step
from nutbridge.v1node import V1Error, V1Node

LISTEN = "127.0.0.1:8082"  # Apache has 80 and 8080 on a v1 node
APACHE_CONF = "nutbridge-v1"
MODULES = ("proxy", "proxy_http", "headers")
PAGES = "solar-protocol-pages.service"
COMMAND_TIMEOUT = 120.0


def state_dir(root: Path, ups: str) -> Path:
    """Where migrate keeps its manifest, the backups, the page runner and copies of the history files."""
    return root / "var/lib/nutbridge" / f"migrate-{ups}"


def fingerprint(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


class Manifest:
    """What migrate changed: each file's state before (a backup when it existed) and the sha256 of what it
    wrote, the Apache modules it enabled, v1's rc.local line. Saved (0600) after every step."""

    def __init__(self, folder: Path, data: dict[str, Any] | None = None) -> None:
        self.folder, self.path = folder, folder / "manifest.json"
        self.data: dict[str, Any] = data or {"files": {}, "modules": [], "done": [], "start_line": ""}

    @classmethod
    def load(cls, folder: Path) -> Manifest | None:
        path = folder / "manifest.json"
        return cls(folder, json.loads(path.read_text())) if path.exists() else None

    def watch(self, path: Path) -> None:
        """Record ``path`` as it is, once: its backup, mode and owner."""
        files = self.data["files"]
        if str(path) in files:
            return
        entry: dict[str, Any] = {"backup": None, "after": None}
        (self.folder / "backups").mkdir(parents=True, exist_ok=True, mode=0o700)
        self.folder.chmod(0o700)
        if path.is_file():
            st = path.stat()
            backup = self.folder / "backups" / f"{len(files)}-{path.name}"
            replace_atomically(backup, path.read_bytes(), 0o600)
            entry.update(backup=str(backup), mode=st.st_mode & 0o7777, owner=[st.st_uid, st.st_gid])
        files[str(path)] = entry

    def settle(self) -> None:
        for name, entry in self.data["files"].items():
            entry["after"] = fingerprint(Path(name))
        self.save()

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        replace_atomically(self.path, json.dumps(self.data, indent=1).encode(), 0o600)

    def changed(self) -> list[tuple[Path, dict[str, Any]]]:
        """The files migrate changed, in the order it first touched them."""
        out = []
        for name, entry in self.data["files"].items():
            before = fingerprint(Path(entry["backup"])) if entry["backup"] else None
            if before != entry["after"]:
                out.append((Path(name), entry))
        return out


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
            self.config_file, seed or port_file, self.confpath / "ups.conf", self.systemd_dir / setup_cmd.UNIT,
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
        setup_cmd.validate(text, self.config_file)
        shown = f"datalog.folder = {self.node.data_dir}\napi.listen = {self.listen}\npeers.public_ip = " \
                f"{self.announced}\npeers.network_key = (API_KEY from {self.node.spenv}; never shown)"  # fmt: skip
        write = lambda: replace_atomically(self.config_file, text.encode(), 0o600, owner=self.owner)  # noqa: E731
        plan.steps.append(Step(f"Write {self.config_file} (0600{self.owned}) for v1's files", write, shown))
        return port_file, seed

    def render(self, port_file: Path, seed: Path | None) -> str:
        node, ups = self.node, self.ups
        text = setup_cmd.render_config(ups, self.url, port_file, seed).replace(
            f"# Written by `nutbridge setup {ups}`.", f"# Written by `nutbridge migrate {ups}` from {node.sp}."
        )
        text = setup_cmd.replace_setting(
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
            text = setup_cmd.data_text(name)
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


def run_command(*argv: str) -> None:
    """Run a system command found on $PATH (a2enmod, apachectl, systemd-run); SetupError when it fails."""
    found = shutil.which(argv[0])
    if found is None:
        raise SetupError(f"{argv[0]} not found on $PATH")
    try:
        done = subprocess.run([found, *argv[1:]], capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"`{' '.join(argv)}` did not run: {exc}") from exc
    if done.returncode != 0:
        said = " ".join((done.stderr or done.stdout).split())[-300:]
        raise SetupError(f"`{' '.join(argv)}` failed (exit status {done.returncode}): {said or 'no message'}")


def undo_plan(args: argparse.Namespace, systemctl: list[str], manifest: Manifest, kept: list[str]) -> Plan:
    """Undo what the manifest says migrate did, in the reverse order: the page builders, Apache's proxy and
    nutbridge stopped, each changed file put back (or removed) unless it changed since, v1 started again."""
    ups, done, steps = args.ups, set(manifest.data["done"]), []

    def sysctl(*words: str) -> Step:
        return Step(f"Run `systemctl {' '.join(words)}`", functools.partial(run_command, *systemctl, *words))

    def command(*argv: str) -> Step:
        return Step(f"Run `{' '.join(argv)}`", functools.partial(run_command, *argv))

    if f"Run `systemctl enable --now {PAGES}`" in done:
        steps.append(sysctl("disable", "--now", PAGES))
    if manifest.data.get("conf"):
        steps.append(command("a2disconf", "-q", APACHE_CONF))
    steps += [command("a2dismod", "-q", m) for m in reversed(manifest.data["modules"])]
    if manifest.data.get("conf") or manifest.data["modules"]:
        steps.append(sysctl("reload", "apache2"))
    units = [u for u in (f"nutbridge@{ups}", f"nut-driver@{ups}") if f"Run `systemctl enable {u}`" in done]
    if units:
        steps.append(sysctl("disable", "--now", *units))
    for path, entry in manifest.changed():
        what = f"Put back {path} as it was" if entry["backup"] else f"Remove {path}"
        steps.append(Step(what, functools.partial(restore, path, entry, kept)))
    steps.append(sysctl("daemon-reload"))
    if any(p.name == "ups.conf" for p, _ in manifest.changed()):
        steps.append(sysctl("try-reload-or-restart", "nut-server.service"))
    if any(title.startswith("Stop v1's logger") for title in done):
        steps.append(start_v1(V1Node(Path(args.v1_root)), manifest.data["start_line"]))
    aside = manifest.folder.with_name(f"{manifest.folder.name}.undone-{dt.datetime.now():%Y%m%d-%H%M%S}")

    def set_aside() -> None:
        if kept:  # the operator decides about those files; their backups stay
            kept.append(f"{manifest.folder} is kept, with the backups; move it aside once those files are settled")
            return
        manifest.folder.rename(aside)

    steps.append(Step(f"Move {manifest.folder} (the manifest, backups, history copies) to {aside}", set_aside))
    return Plan(steps=steps, kept=[], notes=[])


def start_v1(node: V1Node, line: str) -> Step:
    """Start v1 now with rc.local's own line, in a transient unit (as rc-local.service would at boot), unless
    its logger or runner runs already."""
    unit = f"solar-protocol-v1-{int(time.time())}"

    def start() -> None:
        if running := v1node.v1_jobs(node):
            print(f"  note: v1 runs already (pid {running[0][0]}): not started again")
            return
        run_command("systemd-run", f"--unit={unit}", "--property=Type=oneshot", "--property=RemainAfterExit=yes",
                    "--no-block", "/bin/sh", "-c", line)  # fmt: skip

    return Step(f"Start v1 now, as rc.local does at boot (`systemd-run --unit={unit} … {line}`)", start)


def restore(path: Path, entry: dict[str, Any], kept: list[str]) -> None:
    """Put ``path`` back as it was before migrate (remove it when migrate made it), unless it changed since."""
    if fingerprint(path) != entry["after"]:
        had = f"its backup is {entry['backup']}" if entry["backup"] else "migrate had created it"
        kept.append(f"{path} changed since migrate: kept as it is; {had}")
        return
    if entry["backup"] is None:
        path.unlink(missing_ok=True)
        if path.parent.name.endswith(".service.d") and not any(path.parent.iterdir()):
            path.parent.rmdir()
        return
    owner = (entry["owner"][0], entry["owner"][1]) if os.geteuid() == 0 else None
    replace_atomically(path, Path(entry["backup"]).read_bytes(), entry["mode"], owner=owner)


def carry_out(title: str, plan: Plan, *, yes: bool, dry_run: bool, manifest: Manifest | None,
              watched: list[Path], kept: list[str]) -> int:  # fmt: skip
    """Ask, do each step (recording what it changes in ``manifest``), print a summary; the exit status."""
    print(title + (" (dry run: nothing is changed)" if dry_run else ""))
    failed = False
    for i, step in enumerate(plan.steps):
        if dry_run:
            print(f"  would: {step.title}")
            print("".join(f"      {line}\n" for line in step.preview.splitlines()), end="")
            continue
        answer = True if yes else setup_cmd.ask(step.title)
        if answer is False:
            print(f"  skipped: {step.title}")
            continue
        reason = "no answer on stdin; run with --yes to make every change" if answer is None else None
        try:
            if reason is None:
                for path in watched if manifest else []:
                    manifest.watch(path)  # type: ignore[union-attr]
                step.action()
        except SetupError as exc:
            reason = str(exc)
        except OSError as exc:
            reason = describe(exc) + (f" ({exc.filename})" if exc.filename else "")
            reason += "; run it as root (sudo)" if os.geteuid() != 0 else ""
        finally:
            if manifest is not None and manifest.data["files"]:
                manifest.settle()
        if reason is None:
            print(f"  done: {step.title}")
            if manifest is not None:
                manifest.data["done"].append(step.title)
                manifest.save()
            continue
        print(f"{title}: FAILED: {step.title}: {reason}", file=sys.stderr)
        for rest in plan.steps[i + 1 :]:
            print(f"  not done: {rest.title}")
        failed = True
        break
    for note in [*plan.notes, *kept]:
        print(f"  note: {note}")
    return EX_FAIL if failed or plan.refused or kept else EX_OK  # kept: files undo left as they are


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nutbridge migrate", description=__doc__.split("\n\n")[0])
    p.add_argument("ups", metavar="UPS", help="the ups.conf section to create, e.g. solar")
    p.add_argument("--v1-root", default="/", metavar="DIR", help="where the v1 node's files are (default /)")
    p.add_argument(
        "--source", metavar="URL", default=v1node.SERIAL_URL, help=f"the Tracer (default {v1node.SERIAL_URL}, v1's)"
    )
    p.add_argument("--public-ip", metavar="ADDR", help="the address peers reach this node at, when .spenv has no "
                   "STATIC_HOST_IP")  # fmt: skip
    p.add_argument("--listen", default=LISTEN, metavar="HOST:PORT", help=f"the API, on loopback (default {LISTEN})")
    p.add_argument("--undo", action="store_true", help="put back what migrate changed and start v1 again")
    p.add_argument("--yes", "-y", action="store_true", help="make every change without asking")
    p.add_argument("--dry-run", action="store_true", help="print every step and change nothing")
    p.add_argument("--systemctl", metavar="CMD", help="the systemctl command (default: $NUTBRIDGE_SYSTEMCTL, PATH)")
    p.add_argument("--systemd-dir", metavar="DIR", help="where units go (default V1_ROOT/etc/systemd/system)")
    p.set_defaults(no_systemd=False, port_on_disk=False)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    args.systemd_dir = args.systemd_dir or str(Path(args.v1_root) / "etc/systemd/system")
    try:
        systemctl = system.systemctl_command(args.systemctl)
    except ValueError as exc:
        print(f"nutbridge migrate: --systemctl: {exc}", file=sys.stderr)
        return EX_USAGE
    title = f"nutbridge migrate {args.ups}" + (" --undo" if args.undo else "")
    kept: list[str] = []
    if args.undo:
        manifest = Manifest.load(state_dir(Path(args.v1_root), args.ups))
        if manifest is None or systemctl is None:
            why = "no systemctl" if manifest else f"no manifest in {state_dir(Path(args.v1_root), args.ups)}"
            print(f"{title}: nothing to undo: {why}", file=sys.stderr)
            return EX_FAIL
        plan = undo_plan(args, systemctl, manifest, kept)
        return carry_out(title, plan, yes=args.yes, dry_run=args.dry_run, manifest=None, watched=[], kept=kept)
    try:
        migrate = Migrate(args, systemctl)
    except ConfigError as exc:
        print(f"{title}: {exc}", file=sys.stderr)
        return EX_USAGE
    try:
        plan = migrate.plan()
    except ConfigError as exc:
        print(f"{title}: {exc}\nNothing was changed.", file=sys.stderr)
        return EX_CONFIG
    except SetupError as exc:
        print(f"{title}: {exc}\nNothing was changed.", file=sys.stderr)
        return EX_FAIL
    migrate.manifest.data["start_line"] = migrate.start_line
    return carry_out(title, plan, yes=args.yes, dry_run=args.dry_run, manifest=migrate.manifest,
                     watched=migrate.watched(), kept=kept)  # fmt: skip
