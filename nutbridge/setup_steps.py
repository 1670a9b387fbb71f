"""The steps of `nutbridge setup`: Setup works out, from the flags and what is installed, a Plan of Steps (each
change asked as a question, with the function that makes it), what is already in place, and notes. With
``--driver`` the steps are driver mode's: the configuration, ups.conf's section for nutbridge-driver, the link in
NUT's driver folder, and nut-driver@UPS (no port file, no nutbridge@ unit: NUT starts the driver)."""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nutbridge.config import config_path, load, with_overrides
from nutbridge.devices.modbus import parse_modbus_url
from nutbridge.devices.tracer.config import TracerConfig
from nutbridge.errors import ConfigError, NutbridgeError
from nutbridge.files import replace_atomically
from nutbridge.nut.upsconf import driver_folder, nut_confpath, nut_runpath, nut_statepath, parse_sections
from nutbridge.redact import redact_url
from nutbridge.setup_sections import driver_differences, port_file_differences
from nutbridge.setup_texts import (
    DRIVER_DROP_IN,
    DROP_IN,
    SAMPLE_PORT_FILE,
    UNIT,
    data_text,
    driver_mode,
    driver_program,
    driver_section,
    render_config,
    unit_text,
    ups_section,
    validate,
)
from nutbridge.system import NUT_USER, nut_user

SYSTEMCTL_TIMEOUT = 120.0


class SetupError(NutbridgeError):
    """A step cannot be done, or must not be: the message says why and what to do."""


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
        self.driver: bool = args.driver
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
        if self.driver:
            self.plan_config(plan)
            self.plan_ups_conf(plan, None)
            self.plan_driver_link(plan)
            self.plan_systemd(plan)
            return plan
        port_file, seed = self.plan_config(plan)
        assert port_file is not None
        if seed is None:
            self.plan_port_file(plan, port_file)
        else:
            self.plan_seed(plan, port_file, seed)
        self.plan_ups_conf(plan, port_file)
        self.plan_systemd(plan)
        return plan

    def plan_config(self, plan: Plan) -> tuple[Path | None, Path | None]:
        """The config step, or what the existing config says; returns the port file it names and its seed (none
        in driver mode)."""
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
            if self.driver:
                return None, None  # nutbridge-driver sets driver mode itself: the port file is not read
            if existing.nut.port_file is None:
                raise SetupError(
                    f"{path} has no nut.port_file (driver mode): run `nutbridge setup {self.ups} --driver`, or "
                    "docs/nut.md, 'Moving between the modes'"
                )
            return existing.nut.port_file, existing.nut.seed_file
        if self.driver:
            text = driver_mode(render_config(self.ups, self.url, nut_statepath() / f"{self.ups}.dev", None), self.ups)
            self.plan_write_config(plan, text)
            return None, None
        port_file, seed = self.where()
        if seed is None and not self.port_on_disk:
            plan.notes.append(
                f"{nut_runpath()} (NUT's runtime folder, a tmpfs) does not exist: the port file is on the disk, "
                "rewritten at every poll; README, 'Flash writes'"
            )
        self.plan_write_config(plan, render_config(self.ups, self.url, port_file, seed))
        return port_file, seed

    def plan_write_config(self, plan: Plan, text: str) -> None:
        """The step that writes a new configuration, checked first as the daemon will read it."""
        path = self.config_file
        validate(text, path)

        def write() -> None:
            if path.exists():
                raise SetupError(f"{path} appeared meanwhile; it is kept")
            replace_atomically(path, text.encode(), 0o600, owner=self.owner)

        plan.steps.append(Step(f"Write {path} (0600{self.owned})", write, f"source.url = {redact_url(self.url)}"))

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

    def plan_ups_conf(self, plan: Plan, port_file: Path | None) -> None:
        """Append [UPS] to ups.conf (for dummy-ups reading ``port_file``, or for nutbridge-driver when None)."""
        path = self.confpath / "ups.conf"
        try:
            old = path.read_bytes() if path.exists() else b""
        except OSError as exc:
            root = "; run it as root: sudo nutbridge setup ..." if os.geteuid() != 0 else ""
            raise SetupError(f"cannot read {path}: {exc.strerror}{root}") from exc
        existing = parse_sections(old.decode("utf-8", "surrogateescape")).get(self.ups)
        if existing is not None:
            if port_file is None:
                differs = driver_differences(existing, self.url, self.config_file)
                self.refuse_differing(
                    path, differs, "fix that section by hand (docs/nut.md, 'Moving between the modes')"
                )
                plan.kept.append(f"{path} has [{self.ups}] already, with driver = nutbridge and this source")
                return
            self.refuse_differing(
                path, port_file_differences(existing, port_file, self.confpath), "fix that section by hand"
            )
            plan.kept.append(f"{path} has [{self.ups}] already, with this port file and mode = dummy-once")
            return
        if port_file is None:
            section = driver_section(self.ups, self.url, self.config_file)
        else:
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

    def refuse_differing(self, path: Path, differs: list[str], fix: str) -> None:
        """SetupError naming what an existing [UPS] has that setup would not write (setup_sections.py finds it)."""
        if differs:
            raise SetupError(
                f"{path} has a section [{self.ups}] already, with {'; '.join(differs)}. setup changes no section "
                f"it did not write: {fix}, or pick another UPS name"
            )

    def plan_driver_link(self, plan: Plan) -> None:
        """The link ``nutbridge`` → nutbridge-driver in NUT's driver folder, where upsdrvctl looks for it."""
        folder = driver_folder(self.confpath)
        if folder is None or not folder.is_dir():
            where = (
                f"{folder}, ups.conf's driverpath,"
                if folder is not None
                else "(/lib/nut, /usr/lib/nut, /usr/libexec/nut)"
            )
            raise SetupError(
                f"NUT's driver folder {where} does not exist: is NUT installed? (sudo apt install nut-server) "
                "Or set driverpath in ups.conf."
            )
        program = driver_program()
        if program is None:
            raise SetupError("nutbridge-driver is neither beside this nutbridge nor on $PATH: reinstall nutbridge")
        link = folder / "nutbridge"
        if link.exists() or link.is_symlink():
            if os.path.realpath(link) == os.path.realpath(program):
                plan.kept.append(f"{link} exists: it runs {program}")
                return
            plan.refused = True
            shown = f"links to {os.readlink(link)}" if link.is_symlink() else "is not a link"
            plan.notes.append(
                f"{link} {shown}, not to {program}: setup never replaces it; remove it or link it by hand "
                f"(sudo ln -sf {program} {link}), then `nutbridge doctor {self.ups}`"
            )
            return

        def make() -> None:
            try:
                link.symlink_to(program)
            except FileExistsError:
                raise SetupError(f"{link} appeared meanwhile; it is kept") from None

        plan.steps.append(Step(f"Link {link} to {program} (the driver upsdrvctl starts)", make))

    def plan_systemd(self, plan: Plan) -> None:
        if self.driver:
            self.plan_systemd_driver(plan)
            return
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

    def plan_systemd_driver(self, plan: Plan) -> None:
        """Driver mode: Debian's nut-driver@UPS starts nutbridge-driver as it starts NUT's drivers (no unit of ours)."""
        if self.systemctl is None:
            why = "--no-systemd" if self.no_systemd else "no systemctl on $PATH"
            plan.notes.append(f"{why}: nothing enabled; start the driver with `sudo upsdrvctl start {self.ups}`")
            return
        unit_name = f"nut-driver@{self.ups}"
        drop_in = self.systemd_dir / f"{unit_name}.service.d" / "nutbridge-driver.conf"
        text = data_text(DRIVER_DROP_IN).encode()
        if drop_in.exists():
            differs = "" if drop_in.read_bytes() == text else " (it differs from the shipped one)"
            plan.kept.append(f"{drop_in} exists: kept{differs}")
        else:
            plan.steps.append(
                Step(
                    f"Install the driver's drop-in {drop_in} (NUT_IGNORE_CHECKPROCNAME: upsdrvctl may stop a Python "
                    "driver)",
                    functools.partial(replace_atomically, drop_in, text, 0o644),
                )
            )
            plan.steps.append(Step("Run `systemctl daemon-reload`", lambda: self.run_systemctl("daemon-reload")))
        plan.steps.append(
            Step(f"Run `systemctl enable {unit_name}`", functools.partial(self.run_systemctl, "enable", unit_name))
        )

        def start() -> None:
            self.run_systemctl("restart", unit_name)
            self.run_systemctl("try-reload-or-restart", "nut-server.service")

        plan.steps.append(
            Step(
                f"Start {unit_name} now, and have upsd read ups.conf again (`systemctl restart`, "
                "`systemctl try-reload-or-restart nut-server`)",
                start,
            )
        )
        if (self.systemd_dir / UNIT).exists():
            plan.notes.append(
                f"nutbridge@{self.ups} is for the port-file mode: `sudo systemctl disable --now nutbridge@{self.ups}` "
                "if it runs (docs/nut.md, 'Moving between the modes')"
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
