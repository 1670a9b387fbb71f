"""``nutbridge setup UPS --source URL``: a new install in one go, each change asked first.

It writes $NUT_CONFPATH/nutbridge-UPS.toml (0600, owned by nut) from the shipped sample, creates the seed
$NUT_STATEPATH/UPS.dev (owned by nut; an existing one is kept) of the port file $NUTBRIDGE_RUNPATH/UPS.dev on
tmpfs, which nutbridge makes from it at each start (``--port-on-disk``: the port file itself in
$NUT_STATEPATH, written to the disk at every poll), appends [UPS] to ups.conf (never twice; the
rest stays byte for byte), installs the systemd unit and the driver's restart drop-in when they are missing,
and enables and starts nut-driver@UPS and nutbridge@UPS. Exit status 0 done, 1 a step failed or was refused,
2 usage, 78 a bad URL or configuration.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from nutbridge.config import Config, TracerConfig, config_path, from_mapping, load, with_overrides
from nutbridge.errors import ConfigError, NutbridgeError
from nutbridge.files import describe, replace_atomically
from nutbridge.nut.upsconf import nut_confpath, nut_runpath, nut_statepath, parse_sections, port_path
from nutbridge.redact import redact_url
from nutbridge.sources.modbus_url import parse_modbus_url

EX_OK, EX_FAIL, EX_USAGE, EX_CONFIG = 0, 1, 2, 78
NUT_USER = "nut"
UNIT = "nutbridge@.service"
DROP_IN = "nut-driver-restart.conf"
SAMPLE_CONFIG = "nutbridge-solar.toml"
SAMPLE_PORT_FILE = "solar.dev.sample"
UNIT_BINARY = "/usr/local/bin/nutbridge"  # what the shipped unit runs
SYSTEMD_DIR = "/etc/systemd/system"
SYSTEMCTL_TIMEOUT = 120.0
PLAIN_PORT = re.compile(r"^[A-Za-z0-9_./+-]+$")  # written without quotes in ups.conf


class SetupError(NutbridgeError):
    """A step cannot be done, or must not be: the message says why and what to do."""


def data_text(name: str) -> str:
    """A file shipped in the package's data folder: the systemd unit and drop-in, the samples."""
    return resources.files("nutbridge").joinpath("data", name).read_text(encoding="utf-8")


def nut_user() -> pwd.struct_passwd | None:
    """NUT's user (Debian's nut-server package creates it), or None."""
    try:
        return pwd.getpwnam(NUT_USER)
    except KeyError:
        return None


def systemctl_command(flag: str | None) -> list[str] | None:
    """``--systemctl CMD``, else $NUTBRIDGE_SYSTEMCTL, else systemctl from $PATH; None when there is none.
    ValueError for a command line with an unbalanced quote."""
    text = flag or os.environ.get("NUTBRIDGE_SYSTEMCTL")
    if text:
        return shlex.split(text)
    found = shutil.which("systemctl")
    return [found] if found else None


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)


def replace_setting(text: str, name: str, value: str, *, commented: bool = False) -> str:
    """``text`` with its one ``name = ...`` line (``# name = ...`` when ``commented``: it is then set) set to
    ``value``; the sample must have exactly one."""
    pattern = re.compile(rf"^{'# ' if commented else ''}{re.escape(name)} = .*$", re.MULTILINE)
    new, count = pattern.subn(lambda _: f"{name} = {value}", text)
    if count != 1:
        raise AssertionError(f"the shipped {SAMPLE_CONFIG} has {count} '{name} =' lines, not one")
    return new


def render_config(ups: str, url: str, port_file: Path, seed: Path | None) -> str:
    """The shipped sample with source.url, nut.port_file and nut.seed_file set, and its comments naming ``ups``."""
    text = replace_setting(data_text(SAMPLE_CONFIG), "url", toml_string(url))
    text = replace_setting(text, "port_file", toml_string(str(port_file)))
    if seed is not None:
        text = replace_setting(text, "seed_file", toml_string(str(seed)), commented=True)
    for old in ("[solar]", "nutbridge-solar.toml", "nutbridge solar", "@solar", "start solar", "nutbridge/solar"):
        text = text.replace(old, old.replace("solar", ups))
    return f"# Written by `nutbridge setup {ups}`.\n{text}"


def validate(text: str, path: Path) -> Config:
    """The configuration ``text`` would be at ``path``, checked by the loader as the daemon will read it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: the configuration would not be valid TOML: {exc}") from exc
    return with_overrides(from_mapping(data, str(path), base_dir=path.parent))


def ups_section(ups: str, port_file: Path) -> str:
    """The ups.conf section for ``ups``, as etc/ups.conf.sample has it."""
    port = str(port_file)
    if not PLAIN_PORT.match(port):
        port = '"' + port.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return (
        f'[{ups}]\n\tdriver = dummy-ups\n\tport = {port}\n\tmode = dummy-once\n\tdesc = "EPEver Tracer via nutbridge"\n'
    )


def unit_text() -> tuple[str, str | None]:
    """The unit to install, and a note when its ExecStart had to name another nutbridge than UNIT_BINARY."""
    text = data_text(UNIT)
    if os.access(UNIT_BINARY, os.X_OK):
        return text, None
    here = Path(sys.executable).parent / "nutbridge"  # the console script beside this interpreter
    if not os.access(here, os.X_OK):
        return text, f"{UNIT_BINARY} does not exist: link it to your nutbridge before starting the unit"
    return text.replace(UNIT_BINARY, str(here)), f"the unit runs {here} ({UNIT_BINARY} does not exist)"


@dataclass
class Step:
    """One change: what it is (asked as a question) and the function that makes it."""

    title: str
    action: Callable[[], None]
    preview: str = ""  # shown with --dry-run


@dataclass
class Plan:
    """The steps to take, what is already in place, and what the user should know."""

    steps: list[Step]
    kept: list[str]
    notes: list[str]
    refused: bool = False  # something asked for cannot be done (the exit status is then 1)


class Setup:
    """Everything one ``nutbridge setup`` run needs to know, and the steps it plans."""

    def __init__(self, args: argparse.Namespace, systemctl: list[str] | None) -> None:
        self.ups: str = args.ups
        self.url: str = args.source
        self.confpath = nut_confpath()
        self.config_file = config_path(self.ups)
        self.systemd_dir = Path(args.systemd_dir)
        self.systemctl = systemctl
        self.no_systemd: bool = args.no_systemd
        self.port_on_disk: bool = args.port_on_disk
        user = nut_user()
        self.owner = (user.pw_uid, user.pw_gid) if user is not None and os.geteuid() == 0 else None
        self.nut_gid = user.pw_gid if user is not None else None
        self.owned = f", owner {NUT_USER}" if self.owner else ""

    def plan(self) -> Plan:
        """Check everything first (nothing is written before all of it is known to be right), then list the
        steps. ConfigError for a bad URL or configuration, SetupError for anything else in the way."""
        parse_modbus_url(self.url, "--source")
        if not self.confpath.is_dir():
            raise SetupError(
                f"NUT's configuration folder {self.confpath} does not exist: is NUT installed? "
                "(sudo apt install nut-server) Or set NUT_CONFPATH."
            )
        enphase = self.confpath / f"enphase-{self.ups}.conf"
        if enphase.exists() and not self.config_file.exists():
            raise SetupError(
                f"{enphase} exists: nutbridge reads enphase-monitor's configuration as it is (README, "
                f"'Moving from enphase-monitor'); run `nutbridge doctor {self.ups}` to check that install"
            )
        plan = Plan(steps=[], kept=[], notes=[])
        port_file, seed = self.plan_config(plan)
        if seed is None:
            self.plan_port_file(plan, port_file)
        else:
            self.plan_seed(plan, port_file, seed)
        self.plan_ups_conf(plan, port_file)
        self.plan_systemd(plan)
        return plan

    def plan_config(self, plan: Plan) -> tuple[Path, Path | None]:
        """The config step, or what the existing config says; returns the port file it names and its seed."""
        path = self.config_file
        if path.exists() or path.is_symlink():
            try:
                existing = with_overrides(load(path))
            except ConfigError as exc:
                raise ConfigError(
                    f"{exc}\n(the file exists: fix it or remove it; `nutbridge doctor {self.ups}`)"
                ) from None
            wanted = parse_modbus_url(self.url, "--source")
            kept = f"{path} exists: setup never overwrites a configuration; `nutbridge doctor {self.ups}` checks it"
            plan.kept.append(kept)
            if not isinstance(existing.source, TracerConfig) or existing.source.url != wanted:
                plan.refused = True
                plan.notes.append(
                    f"{path} reads another source than --source {redact_url(self.url)}: edit its source.url to change "
                    "it; the other steps use the port file it names"
                )
            assert existing.nut.port_file is not None  # with_overrides refuses a config without one
            return existing.nut.port_file, existing.nut.seed_file
        port_file, seed = self.where()
        if seed is None and not self.port_on_disk:
            plan.notes.append(
                f"{nut_runpath()} (NUT's runtime folder, a tmpfs) does not exist: the port file is on the disk, "
                "rewritten at every poll; README, 'Flash writes'"
            )
        text = render_config(self.ups, self.url, port_file, seed)
        validate(text, path)

        def write() -> None:
            if path.exists():
                raise SetupError(f"{path} appeared meanwhile; it is kept")
            replace_atomically(path, text.encode(), 0o600, owner=self.owner)

        plan.steps.append(Step(f"Write {path} (0600{self.owned})", write, f"source.url = {redact_url(self.url)}"))
        return port_file, seed

    def where(self) -> tuple[Path, Path | None]:
        """A new install's port file and seed: the port file on tmpfs seeded from the state folder, or (with
        --port-on-disk, or without NUT's runtime folder) the port file in the state folder and no seed."""
        on_disk = nut_statepath() / f"{self.ups}.dev"
        run = nut_runpath()
        if self.port_on_disk or not run.is_dir():
            return on_disk, None
        return run / f"{self.ups}.dev", on_disk

    def plan_seed(self, plan: Plan, port_file: Path, seed: Path) -> None:
        """The seed, the port file's persistent copy: nutbridge makes the port file from it at start."""
        title = f"Create the seed {seed} (0644{self.owned}), from which nutbridge makes the port file {port_file}"
        self.plan_from_sample(plan, seed, "seed", title, kept=f", as the seed of {port_file}")

    def plan_port_file(self, plan: Plan, port_file: Path) -> None:
        nocomms = port_file.with_name(port_file.name + "-nocomms")
        title = f"Create the port file {port_file} (0644{self.owned})"
        self.plan_from_sample(plan, port_file, "port file", title, also=(nocomms,))

    def plan_from_sample(
        self, plan: Plan, path: Path, what: str, title: str, *, kept: str = "", also: tuple[Path, ...] = ()
    ) -> None:
        """A step that makes ``path`` (the port file or its seed) from the sample, unless it or one of ``also``
        (its other names) exists: then it is kept as it is."""
        names = (path, *also)
        for present in names:
            if present.exists():
                plan.kept.append(f"{present} exists: kept as it is{kept}")
                return
        if not path.parent.is_dir():
            raise SetupError(
                f"the {what}'s folder {path.parent} does not exist: is NUT installed? "
                "(sudo apt install nut-server) Or set NUT_STATEPATH."
            )
        sample = data_text(SAMPLE_PORT_FILE).encode()

        def create() -> None:
            if any(name.exists() for name in names):
                raise SetupError(f"{path} appeared meanwhile; it is kept")
            replace_atomically(path, sample, 0o644, owner=self.owner)

        plan.steps.append(Step(title, create))

    def plan_ups_conf(self, plan: Plan, port_file: Path) -> None:
        path = self.confpath / "ups.conf"
        try:
            old = path.read_bytes() if path.exists() else b""
        except OSError as exc:
            root = "; run it as root: sudo nutbridge setup ..." if os.geteuid() != 0 else ""
            raise SetupError(f"cannot read {path}: {exc.strerror}{root}") from exc
        existing = parse_sections(old.decode("utf-8", "surrogateescape")).get(self.ups)
        if existing is not None:
            self.compare_section(path, existing, port_file)
            plan.kept.append(f"{path} has [{self.ups}] already, with this port file and mode = dummy-once")
            return
        section = ups_section(self.ups, port_file)

        def append() -> None:
            current = path.read_bytes() if path.exists() else b""
            if current != old:
                raise SetupError(f"{path} changed meanwhile; run setup again")
            owner: tuple[int, int] | None
            if path.exists():
                st = path.stat()
                mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
            else:  # as Debian ships it: root:nut 0640
                mode, owner = 0o640, (0, self.nut_gid) if self.nut_gid is not None and os.geteuid() == 0 else None
            gap = b"" if not current else b"\n" if current.endswith(b"\n") else b"\n\n"
            replace_atomically(path, current + gap + section.encode(), mode, owner=owner)

        plan.steps.append(Step(f"Append [{self.ups}] to {path}", append, section))

    def compare_section(self, path: Path, entries: dict[str, str], port_file: Path) -> None:
        """An existing [UPS] must be the one setup would write; else SetupError naming what differs."""
        differs = []
        if entries.get("driver") != "dummy-ups":
            differs.append(f"driver = {entries.get('driver', '(none)')} (setup wants dummy-ups)")
        port = entries.get("port")
        if port is None or port_path(port, self.confpath) != os.path.realpath(port_file):
            differs.append(f"port = {port or '(none)'} (setup wants {port_file})")
        if entries.get("mode") != "dummy-once":
            differs.append(f"mode = {entries.get('mode', '(none)')} (setup wants dummy-once)")
        if differs:
            raise SetupError(
                f"{path} has a section [{self.ups}] already, with {'; '.join(differs)}. setup changes no section "
                f"it did not write: fix that section by hand, or pick another UPS name"
            )

    def plan_systemd(self, plan: Plan) -> None:
        if self.systemctl is None:
            why = "--no-systemd" if self.no_systemd else "no systemctl on $PATH"
            plan.notes.append(
                f"{why}: no systemd unit installed or enabled. Without systemd nutbridge restarts the driver "
                f"itself; start it with `nutbridge {self.ups}`"
            )
            return
        installed = False
        unit, note = unit_text()
        drop_in = data_text(DROP_IN)
        for dest, text, what in (
            (self.systemd_dir / UNIT, unit, "the unit"),
            (self.systemd_dir / f"nut-driver@{self.ups}.service.d" / "nutbridge.conf", drop_in, "the driver's drop-in"),
        ):
            if dest.exists():
                differs = "" if dest.read_bytes() == text.encode() else " (it differs from the shipped one)"
                plan.kept.append(f"{dest} exists: kept{differs}")
                continue
            data = text.encode()
            plan.steps.append(Step(f"Install {what} {dest}", functools.partial(replace_atomically, dest, data, 0o644)))
            installed = True
            if dest.name == UNIT and note:
                plan.notes.append(note)
        if installed:
            plan.steps.append(Step("Run `systemctl daemon-reload`", lambda: self.run_systemctl("daemon-reload")))
        for unit_name in (f"nut-driver@{self.ups}", f"nutbridge@{self.ups}"):
            plan.steps.append(
                Step(f"Run `systemctl enable {unit_name}`", functools.partial(self.run_systemctl, "enable", unit_name))
            )

        def start() -> None:
            self.run_systemctl("restart", f"nutbridge@{self.ups}", f"nut-driver@{self.ups}")
            self.run_systemctl("try-reload-or-restart", "nut-server.service")

        plan.steps.append(
            Step(
                f"Start nutbridge@{self.ups} and nut-driver@{self.ups} now, and have upsd read ups.conf again "
                "(`systemctl restart`, `systemctl try-reload-or-restart nut-server`)",
                start,
            )
        )

    def run_systemctl(self, *args: str) -> None:
        assert self.systemctl is not None
        argv = [*self.systemctl, *args]
        shown = "systemctl " + " ".join(args)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT, check=False)
        except OSError as exc:
            raise SetupError(f"cannot run {argv[0]}: {exc.strerror}") from exc
        except subprocess.TimeoutExpired as exc:
            raise SetupError(f"`{shown}` did not finish within {SYSTEMCTL_TIMEOUT:g} s") from exc
        if done.returncode != 0:
            said = " ".join((done.stderr or done.stdout).split())[-300:]
            raise SetupError(f"`{shown}` failed (exit status {done.returncode}): {said or 'no message'}")


def ask(question: str) -> bool | None:
    """Yes (the default) or no from stdin; None when stdin has no answer left."""
    while True:
        print(f"{question}? [Y/n] ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            print()
            return None
        answer = line.strip().lower()
        if answer in ("", "y", "yes"):
            return True
        if answer in ("n", "no"):
            return False
        print("  please answer y or n")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nutbridge setup", description=__doc__.split("\n\n")[0])
    p.add_argument("ups", metavar="UPS", help="the ups.conf section to create, e.g. solar")
    p.add_argument(
        "--source",
        metavar="URL",
        required=True,
        help="the Tracer: rtu:///dev/ttyUSB0?baudrate=115200, tcp://HOST:502, rtu+tcp://HOST:PORT",
    )
    p.add_argument("--yes", "-y", action="store_true", help="make every change without asking")
    p.add_argument("--dry-run", action="store_true", help="print every step and change nothing")
    p.add_argument("--no-systemd", action="store_true", help="skip the systemd unit, drop-in and systemctl steps")
    on_disk = "the port file in $NUT_STATEPATH, written at every poll, not on tmpfs seeded from there"
    p.add_argument("--port-on-disk", action="store_true", help=on_disk)
    p.add_argument("--systemctl", metavar="CMD", help="the systemctl command (default: $NUTBRIDGE_SYSTEMCTL, PATH)")
    p.add_argument("--systemd-dir", metavar="DIR", default=SYSTEMD_DIR, help=f"where units go (default {SYSTEMD_DIR})")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        systemctl = None if args.no_systemd else systemctl_command(args.systemctl)
    except ValueError as exc:
        print(f"nutbridge setup: --systemctl: {exc}", file=sys.stderr)
        return EX_USAGE
    try:
        setup = Setup(args, systemctl)
    except ConfigError as exc:  # the UPS name
        print(f"nutbridge setup: {exc}", file=sys.stderr)
        return EX_USAGE
    try:
        plan = setup.plan()
    except ConfigError as exc:
        print(f"nutbridge setup: {exc}\nNothing was changed.", file=sys.stderr)
        return EX_CONFIG
    except SetupError as exc:
        print(f"nutbridge setup: {exc}\nNothing was changed.", file=sys.stderr)
        return EX_FAIL
    return carry_out(setup, plan, yes=args.yes, dry_run=args.dry_run)


def run_step(step: Step, ups: str) -> str | None:
    """Make one change; None when done, else why it failed."""
    try:
        step.action()
    except SetupError as exc:
        return str(exc)
    except OSError as exc:
        reason = describe(exc) + (f" ({exc.filename})" if exc.filename else "")
        if exc.errno in (errno.EPERM, errno.EACCES) and os.geteuid() != 0:
            reason += f"; run it as root: sudo nutbridge setup {ups} ..."
        return reason
    return None


def carry_out(setup: Setup, plan: Plan, *, yes: bool, dry_run: bool) -> int:
    """Ask, do each step, print a summary; the exit status."""
    ups = setup.ups
    print(f"nutbridge setup {ups}" + (" (dry run: nothing is changed)" if dry_run else ""))
    for kept in plan.kept:
        print(f"  already there: {kept}")
    summary: list[tuple[str, str]] = [("kept", kept) for kept in plan.kept]
    failed = False
    for i, step in enumerate(plan.steps):
        if dry_run:
            print(f"  would: {step.title}")
            print("".join(f"      {line}\n" for line in step.preview.splitlines()), end="")
            summary.append(("would", step.title))
            continue
        answer = True if yes else ask(step.title)
        if answer is False:
            summary.append(("skipped", step.title))
            continue
        reason = "no answer on stdin; run with --yes to make every change" if answer is None else run_step(step, ups)
        if reason is None:
            print(f"  done: {step.title}")
            summary.append(("done", step.title))
            continue
        print(f"nutbridge setup: FAILED: {step.title}: {reason}", file=sys.stderr)
        summary.append(("FAILED", f"{step.title}: {reason}"))
        summary += [("not done", s.title) for s in plan.steps[i + 1 :]]
        failed = True
        break
    if not dry_run:
        print(f"\nSummary for {ups}:")
        for outcome, what in summary:
            print(f"  {outcome:<9}{what}")
    for note in plan.notes:
        print(f"  note: {note}")
    if not dry_run and not failed:
        print_monitor_hint(setup)
    print(f"Next: `nutbridge doctor {ups}` checks the install; `upsc {ups}@localhost` shows what NUT sees.")
    return EX_FAIL if failed or plan.refused else EX_OK


def print_monitor_hint(setup: Setup) -> None:
    """Say so when upsmon.conf has no MONITOR line for the UPS yet (setup cannot know the password)."""
    from nutbridge.doctor import find_monitor

    try:
        monitored = find_monitor(setup.ups, setup.confpath / "upsmon.conf") is not None
    except OSError:
        monitored = True  # unreadable or missing: the doctor says so, with the fix
    if not monitored:
        print(
            f"  note: upsmon.conf has no MONITOR line for {setup.ups} yet, so nothing shuts this host down: add "
            f"`MONITOR {setup.ups}@localhost 1 USER PASSWORD primary` (a user from upsd.users)"
        )
