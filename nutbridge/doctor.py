"""``nutbridge doctor UPS [--json]``: check a running install step by step, saying what is wrong and how to fix it.

One line per check (ok, warn or FAIL), with the fix, the exact command where there is one: the configuration,
the port file (present, writable by nutbridge's user, off tmpfs or seeded from a file that is), ups.conf's
section, the driver, what upsc answers and how fresh it is, upsmon's MONITOR line, and the quirks of the
installed NUT. Exit status 0 when nothing failed, 1 otherwise, 2 for usage.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nutbridge.config import Config, ups_config_file, with_overrides
from nutbridge.errors import ConfigError
from nutbridge.files import describe
from nutbridge.nut.portfile import parse_lines, parse_values
from nutbridge.nut.upsconf import MAX_UPS_CONF, nut_confpath, nut_statepath, parse_sections, port_path
from nutbridge.nut.version import V2_8_3, V2_8_4, NutVersion, detect, find_dummy_ups
from nutbridge.system import NUT_USER, find_monitor, load_any, nut_user, systemctl_command

OK, WARN, FAIL = "ok", "warn", "FAIL"
EX_OK, EX_FAIL, EX_USAGE = 0, 1, 2
MOUNTINFO = "/proc/self/mountinfo"
SYSTEMD_RUN = "/run/systemd/system"  # present when systemd is PID 1
NUT_STATE_FOLDERS = ("/run/nut", "/var/run/nut", "/var/state/ups")  # NUT's own state folder, where builds put it
VOLATILE = ("tmpfs", "ramfs")
# nutbridge@.service's ProtectSystem=full makes these read-only for it, ProtectHome=yes hides these
READ_ONLY_FOR_UNIT = ("/usr", "/boot", "/efi", "/etc")
HIDDEN_FROM_UNIT = ("/home", "/root", "/run/user")
TIMEOUT = 10.0
V2_8_0, V2_8_1 = NutVersion(2, 8, 0), NutVersion(2, 8, 1)
SAFE_GRACE = 10.0  # rides out a glitch of 9 s at the default Modbus timeout (README, Comms loss)


@dataclass(frozen=True, slots=True)
class Result:
    """What one check found: ``level`` is ok, warn or FAIL; ``fix`` says what to do (a command where possible)."""

    name: str
    level: str
    message: str
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class UpscAnswer:
    """upsc's variables, or the error it printed."""

    values: dict[str, str]
    error: str | None


@dataclass
class Context:
    """What the checks look at; ``gather`` fills it from the environment and the flags."""

    ups: str
    confpath: Path
    config_file: Path
    config: Config | None
    config_error: str | None
    port_file: Path
    user: pwd.struct_passwd  # who nutbridge runs as: nut (the unit's User=), else whoever runs the doctor
    systemctl: list[str] | None = None  # None: no systemd to ask
    upsc: list[str] = field(default_factory=lambda: ["upsc"])
    upsd: str = "localhost"
    mounts: Path = Path(MOUNTINFO)
    dummy_ups: Path | None = None
    nut_version: NutVersion | None = None  # what `dummy-ups -V` says
    timeout: float = TIMEOUT
    upsc_answer: UpscAnswer | None = None  # asked once, by the first check that needs it

    @property
    def nocomms_file(self) -> Path:
        return self.port_file.with_name(self.port_file.name + "-nocomms")

    def present_port_file(self) -> Path | None:
        """The port file under the name it has now, or None."""
        return next((p for p in (self.port_file, self.nocomms_file) if p.is_file()), None)

    def ask_upsc(self) -> UpscAnswer:
        """``upsc UPS@upsd``, once."""
        if self.upsc_answer is None:
            self.upsc_answer = run_upsc([*self.upsc, f"{self.ups}@{self.upsd}"], self.timeout)
        return self.upsc_answer

    def restart_driver(self) -> str:
        """The command that starts the driver again."""
        return f"sudo systemctl restart nut-driver@{self.ups}" if self.systemctl else f"sudo upsdrvctl start {self.ups}"

    def restart_daemon(self) -> str:
        """The command that starts nutbridge again."""
        return f"sudo systemctl restart nutbridge@{self.ups}" if self.systemctl else f"restart `nutbridge {self.ups}`"

    def systemctl_says(self, *args: str) -> str:
        """What ``systemctl ARGS`` prints (is-active: active, inactive, failed …)."""
        assert self.systemctl is not None
        done = subprocess.run(
            [*self.systemctl, *args], capture_output=True, text=True, timeout=self.timeout, check=False
        )
        return done.stdout.strip() or done.stderr.strip() or f"exit status {done.returncode}"


def run_upsc(argv: list[str], timeout: float) -> UpscAnswer:
    """upsc's ``name: value`` lines, or its ``Error: …`` line."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except OSError as exc:
        return UpscAnswer({}, f"cannot run {argv[0]}: {exc.strerror}")
    except subprocess.TimeoutExpired:
        return UpscAnswer({}, f"no answer within {timeout:g} s")
    if done.returncode != 0:
        said = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        error = next((line for line in said if line.startswith("Error")), said[-1] if said else "")
        return UpscAnswer({}, error or f"exit status {done.returncode}")
    values = {}
    for line in done.stdout.splitlines():
        name, sep, value = line.partition(": ")
        if sep:
            values[name] = value
    return UpscAnswer(values, None)


# ------------------------------------------------------------------ helpers


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def may(st: os.stat_result, user: pwd.struct_passwd, bits: int) -> bool:
    """Whether ``user`` has the permission ``bits`` (4 read, 2 write, 1 search) by the mode bits of ``st``."""
    if user.pw_uid == 0:
        return True
    if st.st_uid == user.pw_uid:
        shift = 6
    elif st.st_gid in os.getgrouplist(user.pw_name, user.pw_gid):
        shift = 3
    else:
        shift = 0
    return (st.st_mode >> shift) & bits == bits


def owner_text(st: os.stat_result) -> str:
    return f"owner {user_name(st.st_uid)}:{group_name(st.st_gid)}, mode {st.st_mode & 0o7777:04o}"


def unescape_mount(text: str) -> str:
    """A mount point as the kernel escapes it (``\\040`` for a space)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), text)


def filesystem_of(path: Path, mounts: Path) -> tuple[str, str] | None:
    """(mount point, filesystem type) of the mount holding ``path``, from a /proc/self/mountinfo or a
    /proc/mounts style file; the longest mount point wins, and of two at one point the later (it covers the other)."""
    target = os.path.realpath(path)
    best: tuple[str, str] | None = None
    for line in mounts.read_text(errors="replace").splitlines():
        left, sep, right = line.partition(" - ")
        if sep:  # mountinfo: ID PARENT MAJ:MIN ROOT POINT OPTIONS ... - TYPE SOURCE OPTIONS
            fields, rest = left.split(), right.split()
            if len(fields) < 5 or not rest:
                continue
            point, fstype = unescape_mount(fields[4]), rest[0]
        else:  # mounts: SOURCE POINT TYPE OPTIONS ...
            fields = line.split()
            if len(fields) < 3:
                continue
            point, fstype = unescape_mount(fields[1]), fields[2]
        inside = point in ("/", target) or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, fstype)
    return best


def under(path: str, folders: tuple[str, ...]) -> str | None:
    """The first of ``folders`` that holds ``path``."""
    return next((f for f in folders if path == f or path.startswith(f + "/")), None)


def read_ups_conf(confpath: Path) -> dict[str, dict[str, str]]:
    """ups.conf's sections (OSError when it cannot be read)."""
    return parse_sections((confpath / "ups.conf").read_text(errors="replace")[:MAX_UPS_CONF])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user
    return True


def nut_state_folders() -> list[Path]:
    """Where NUT's drivers keep their sockets: $NUT_STATEPATH, else where NUT's builds put them."""
    env = os.environ.get("NUT_STATEPATH")
    return [Path(env)] if env else [Path(p) for p in NUT_STATE_FOLDERS]


def nut_pid_folders() -> list[Path]:
    """Where NUT's drivers write their pid files: $NUT_ALTPIDPATH, then the state folders."""
    env = os.environ.get("NUT_ALTPIDPATH")
    return ([Path(env)] if env else []) + nut_state_folders()


# ------------------------------------------------------------------ the checks


def check_config(ctx: Context) -> Result:
    """1. The configuration exists, parses and validates (the daemon's own loader)."""
    name, path = "config", ctx.config_file
    if not path.exists():
        return Result(name, FAIL, f"{path} does not exist", f"sudo nutbridge setup {ctx.ups} --source URL")
    if ctx.config is None:
        if not os.access(path, os.R_OK):
            return Result(name, FAIL, str(ctx.config_error), f"run it as root: sudo nutbridge doctor {ctx.ups}")
        return Result(
            name,
            FAIL,
            str(ctx.config_error),
            f"edit {path} as the message says; then `nutbridge -c {path} -s` tries one poll",
        )
    config = ctx.config
    kind = config.source.kind if config.source else "none"
    return Result(
        name,
        OK,
        f"{path} is valid: source {kind}, port file {config.nut.port_file}, "
        f"a poll every {config.monitor.poll_interval:g} s",
    )


def check_config_private(ctx: Context) -> Result:
    """1. The configuration is private (it may hold secrets) and readable by the user nutbridge runs as."""
    name, path, user = "config-private", ctx.config_file, ctx.user
    try:
        st = path.stat()
    except OSError as exc:
        return Result(name, WARN, f"not checked: {path}: {describe(exc)}")
    if st.st_mode & 0o077:
        return Result(
            name,
            FAIL,
            f"{path} is open to group or others ({owner_text(st)}); it may hold secrets (passwords, keys)",
            f"sudo chmod 600 {path}",
        )
    if not may(st, user, 4):
        return Result(
            name,
            FAIL,
            f"{user.pw_name} cannot read {path} ({owner_text(st)}), and nutbridge runs as {user.pw_name}",
            f"sudo chown {user.pw_name}:{group_name(user.pw_gid)} {path}",
        )
    return Result(name, OK, f"{path}: {owner_text(st)}")


def check_port_file(ctx: Context) -> Result:
    """2. The port file is there (its -nocomms name means comms with the device are lost)."""
    name, path = "port-file", ctx.port_file
    if path.is_file():
        return Result(name, OK, f"{path} is there")
    if ctx.nocomms_file.is_file():
        return Result(
            name,
            FAIL,
            f"comms with the device are lost: nutbridge renamed the port file to {ctx.nocomms_file.name}, "
            "so dummy-ups exited and NUT has no data",
            f"check the device (power, cable, --source) and `journalctl -u nutbridge@{ctx.ups}`; "
            "the file gets its name back at the first good poll",
        )
    if path.exists():
        return Result(name, FAIL, f"{path} is not a file", f"remove it and run `sudo nutbridge setup {ctx.ups} ...`")
    user = ctx.user.pw_name
    seed = ctx.config.nut.seed_file if ctx.config is not None else None
    if seed is not None and seed.is_file():
        return Result(
            name,
            FAIL,
            f"{path} does not exist (nor {ctx.nocomms_file.name}): nutbridge has not started since the last reboot",
            f"{ctx.restart_daemon()}: it creates the port file from its seed {seed}",
        )
    return Result(
        name,
        FAIL,
        f"{path} does not exist (nor {ctx.nocomms_file.name})",
        f"sudo install -o {user} -g {group_name(ctx.user.pw_gid)} -m 0644 /dev/null {seed or path}",
    )


def check_port_file_owner(ctx: Context) -> Result:
    """2. The port file is owned (or at least writable) by nutbridge's user, who may also create files beside it."""
    name, user = "port-file-owner", ctx.user
    present = ctx.present_port_file()
    if present is None:
        return Result(name, WARN, "not checked: no port file")
    target = Path(os.path.realpath(present))
    st = target.stat()
    group = group_name(user.pw_gid)
    if st.st_uid != user.pw_uid and not may(st, user, 2):
        return Result(
            name,
            FAIL,
            f"{user.pw_name} cannot write {target} ({owner_text(st)}), and nutbridge runs as {user.pw_name}",
            f"sudo chown {user.pw_name}:{group} {target}",
        )
    folder = target.parent
    fst = folder.stat()
    if not may(fst, user, 3):
        return Result(
            name,
            FAIL,
            f"{user.pw_name} cannot create files in {folder} ({owner_text(fst)}): nutbridge replaces the port file "
            "by renaming a new one over it",
            f"sudo chgrp {group} {folder} && sudo chmod g+rwx {folder}",
        )
    return Result(name, OK, f"{target}: {owner_text(st)}; {user.pw_name} may write it and its folder")


def check_port_file_disk(ctx: Context) -> Result:
    """2. The port file is where nutbridge@.service can write it, and survives a reboot: not on tmpfs, or on
    tmpfs with a seed file on persistent storage (the seed is checked the same way)."""
    name = "port-file-disk"
    present = ctx.present_port_file()
    target = os.path.realpath(present or ctx.port_file)
    seed = ctx.config.nut.seed_file if ctx.config is not None else None
    off_tmpfs = f"/var/lib/nut/{ctx.ups}.dev"
    move = (
        f"move it, e.g. `sudo install -o {NUT_USER} -g {NUT_USER} -m 0644 {present or ctx.port_file} {off_tmpfs}`, "
        f"then set nut.port_file in {ctx.config_file} and port in {ctx.confpath / 'ups.conf'}"
    )
    problem = unit_cannot_write(ctx, name, target, move)
    if problem is not None:
        return problem
    try:
        found = filesystem_of(Path(target), ctx.mounts)
    except OSError as exc:
        return Result(name, WARN, f"cannot tell the filesystem of {target}: {ctx.mounts}: {describe(exc)}")
    if found is None:
        return Result(name, WARN, f"{ctx.mounts} lists no mount holding {target}")
    point, fstype = found
    if seed is not None:
        return check_seed_disk(ctx, name, f"{target} is on {fstype} ({point})", seed, volatile=fstype in VOLATILE)
    if fstype in VOLATILE:
        return Result(
            name,
            FAIL,
            f"{target} is on {fstype} ({point}): a reboot deletes it, the lines written into it "
            "by hand too, and nutbridge does not start without it",
            f"set nut.seed_file in {ctx.config_file} to a file on persistent storage that holds those lines, "
            f"e.g. `sudo install -o {NUT_USER} -g {NUT_USER} -m 0644 {present or ctx.port_file} {off_tmpfs}` and "
            f'seed_file = "{off_tmpfs}" (nutbridge creates the port file from it at start and copies hand edits '
            f"back); or {move}",
        )
    return Result(name, OK, f"{target} is on {fstype} ({point})")


def check_seed_disk(ctx: Context, name: str, where: str, seed: Path, *, volatile: bool) -> Result:
    """The seed of a port file (``where`` says where that is, ``volatile`` whether a reboot deletes it): present,
    writable by the unit, not on tmpfs."""
    target = os.path.realpath(seed)
    present = ctx.present_port_file()
    copy = f"sudo install -o {NUT_USER} -g {NUT_USER} -m 0644 {present or '/dev/null'} {target}"
    problem = unit_cannot_write(ctx, name, target, f"set nut.seed_file in {ctx.config_file} to a file under /var/lib")
    if problem is not None:
        return problem
    try:
        found = filesystem_of(Path(target), ctx.mounts)
    except OSError as exc:
        return Result(name, WARN, f"cannot tell the filesystem of the seed {target}: {ctx.mounts}: {describe(exc)}")
    if found is None:
        return Result(name, WARN, f"{ctx.mounts} lists no mount holding the seed {target}")
    point, fstype = found
    if fstype in VOLATILE:
        return Result(
            name,
            FAIL,
            f"{where}, and its seed {target} is on {fstype} ({point}) too: a reboot deletes both, with the lines "
            "written by hand, and nutbridge does not start without them",
            f"set nut.seed_file in {ctx.config_file} to a file on persistent storage, e.g. /var/lib/nut/{ctx.ups}.dev",
        )
    if not Path(target).is_file():
        return Result(
            name,
            FAIL if volatile else WARN,
            f"{where}; its seed {target} does not exist: nutbridge creates it when it polls, but without it "
            "nutbridge does not start once the port file is gone (a reboot deletes it from tmpfs)",
            copy,
        )
    return Result(
        name,
        OK,
        f"{where}, seeded from {target} on {fstype} ({point}): the lines written by hand survive a reboot",
    )


def unit_cannot_write(ctx: Context, name: str, target: str, fix: str) -> Result | None:
    """A Result when ``target`` is where nutbridge@.service may not write (a FAIL under systemd), else None."""
    protected = under(target, READ_ONLY_FOR_UNIT) or under(target, HIDDEN_FROM_UNIT)
    if not protected:
        return None
    return Result(
        name,
        FAIL if ctx.systemctl else WARN,
        f"{target} is under {protected}, which nutbridge@.service cannot write (ProtectSystem=full, ProtectHome=yes)",
        fix,
    )


def check_ups_conf(ctx: Context) -> Result:
    """3. ups.conf has [UPS] with driver = dummy-ups, port = the port file (resolved), mode = dummy-once."""
    name, path, ups = "ups-conf", ctx.confpath / "ups.conf", ctx.ups
    try:
        sections = read_ups_conf(ctx.confpath)
    except OSError as exc:
        fix = f"run it as root: sudo nutbridge doctor {ups}" if os.geteuid() != 0 else "sudo apt install nut-server"
        return Result(name, FAIL, f"cannot read {path}: {describe(exc)}", fix)
    entries = sections.get(ups)
    if entries is None:
        section = f"[{ups}]\\n\\tdriver = dummy-ups\\n\\tport = {ctx.port_file}\\n\\tmode = dummy-once\\n"
        return Result(name, FAIL, f"{path} has no [{ups}] section", f"printf '\\n{section}' | sudo tee -a {path}")
    wrong, warn = [], []
    if entries.get("driver") != "dummy-ups":
        wrong.append(f"driver = {entries.get('driver', '(none)')}, not dummy-ups")
    port = entries.get("port")
    if port is None:
        wrong.append("no port")
    elif port_path(port, ctx.confpath) != os.path.realpath(ctx.port_file):
        wrong.append(f"port = {port} is {port_path(port, ctx.confpath)}, but the port file is {ctx.port_file}")
    mode = entries.get("mode")
    if mode is None and ctx.port_file.name.endswith(".dev"):
        warn.append("no mode: dummy-ups picks dummy-once for a .dev file, but say it")
    elif mode != "dummy-once":
        wrong.append(f"mode = {mode or '(none)'}, not dummy-once (which re-reads the file when it changes)")
    fix = (
        f"in [{ups}] of {path} set driver = dummy-ups, port = {ctx.port_file}, mode = dummy-once; "
        f"then {ctx.restart_driver()}"
    )
    if wrong:
        return Result(name, FAIL, f"[{ups}] in {path}: {'; '.join(wrong + warn)}", fix)
    if warn:
        return Result(name, WARN, f"[{ups}] in {path}: {'; '.join(warn)}", fix)
    return Result(name, OK, f"[{ups}] in {path}: dummy-ups, port {port}, dummy-once")


def check_driver(ctx: Context) -> Result:
    """4. The driver runs: nut-driver@UPS is active (systemd), else dummy-ups' pid file and socket."""
    name, ups = "driver", ctx.ups
    lost = " (comms are lost: dummy-ups exits while the port file is -nocomms)" if ctx.nocomms_file.is_file() else ""
    if ctx.systemctl:
        state = ctx.systemctl_says("is-active", f"nut-driver@{ups}")
        if state == "active":
            return Result(name, OK, f"nut-driver@{ups} is active")
        return Result(
            name,
            FAIL,
            f"nut-driver@{ups} is {state}{lost}",
            f"{ctx.restart_driver()}; `journalctl -u nut-driver@{ups}` says why it stopped",
        )
    driver = f"dummy-ups-{ups}"
    pidfile = next((f / f"{driver}.pid" for f in nut_pid_folders() if (f / f"{driver}.pid").is_file()), None)
    if pidfile is None:
        where = ", ".join(str(f) for f in nut_pid_folders())
        return Result(
            name, FAIL, f"dummy-ups does not run for {ups}: no {driver}.pid in {where}{lost}", ctx.restart_driver()
        )
    try:
        pid = int(pidfile.read_text().split()[0])
    except (ValueError, IndexError):
        pid = 0
    if pid <= 0 or not pid_alive(pid):
        return Result(name, FAIL, f"{pidfile} names pid {pid}, which does not run{lost}", ctx.restart_driver())
    socket = next((f / driver for f in nut_state_folders() if (f / driver).exists()), None)
    if socket is None:
        return Result(
            name, FAIL, f"dummy-ups runs (pid {pid}) but has no socket {driver} for upsd", ctx.restart_driver()
        )
    return Result(name, OK, f"dummy-ups runs (pid {pid}), socket {socket}")


def check_daemon(ctx: Context) -> Result:
    """4. Under systemd: nutbridge@UPS is active."""
    ups = ctx.ups
    state = ctx.systemctl_says("is-active", f"nutbridge@{ups}")
    if state == "active":
        return Result("daemon", OK, f"nutbridge@{ups} is active")
    return Result(
        "daemon",
        FAIL,
        f"nutbridge@{ups} is {state}",
        f"sudo systemctl enable --now nutbridge@{ups}; `journalctl -u nutbridge@{ups}` says why it stopped",
    )


def upsc_failure(ctx: Context, error: str) -> Result:
    """What a failed upsc means, and what to do."""
    name, address = "upsc", f"{ctx.ups}@{ctx.upsd}"
    if "Driver not connected" in error:
        lost = ": comms are lost (the port file is -nocomms)" if ctx.nocomms_file.is_file() else ""
        return Result(name, FAIL, f"upsc {address}: {error}{lost}", ctx.restart_driver())
    if "Data stale" in error:
        return Result(name, FAIL, f"upsc {address}: {error}: the driver stopped updating upsd", ctx.restart_driver())
    if "Unknown UPS" in error:
        return Result(
            name,
            FAIL,
            f"upsc {address}: {error}: upsd has not read [{ctx.ups}] from ups.conf",
            "sudo systemctl reload nut-server (or `sudo upsd -c reload`)",
        )
    if "cannot run" in error:
        return Result(name, FAIL, error, "sudo apt install nut-client")
    return Result(
        name,
        FAIL,
        f"upsc {address}: {error}: upsd does not answer there",
        "sudo systemctl start nut-server (upsd), and check LISTEN in upsd.conf",
    )


def check_upsc(ctx: Context) -> Result:
    """5. upsc answers with a ups.status, and the values are fresh (the daemon's /health, else the port file's age)."""
    name, address = "upsc", f"{ctx.ups}@{ctx.upsd}"
    answer = ctx.ask_upsc()
    if answer.error is not None:
        return upsc_failure(ctx, answer.error)
    status = answer.values.get("ups.status", "").strip()
    if not status:
        return Result(
            name,
            FAIL,
            f"upsc {address} answers but has no ups.status: nutbridge has not written one",
            f"{ctx.restart_daemon()}; `nutbridge status {ctx.ups}`",
        )
    said = f"upsc {address}: ups.status {status}"
    config = ctx.config
    interval = 10.0
    if config is not None:
        interval = max(config.monitor.poll_interval, config.monitor.poll_interval_on_battery or 0.0)
        if config.api.listen is not None:
            from nutbridge.status_cmd import api_url, get_json

            url = api_url(config)
            try:
                code, health = get_json(f"{url}/health")
            except (OSError, ValueError):
                pass  # the API is off or down: judge by the port file
            else:
                if code == 200:
                    return Result(name, OK, f"{said}; nutbridge's API says fresh")
                reason = health.get("reason") if isinstance(health, dict) else None
                return Result(
                    name,
                    FAIL,
                    f"{said}, but nutbridge's API says stale: {reason or code}",
                    f"`nutbridge status {ctx.ups}`; `journalctl -u nutbridge@{ctx.ups}`",
                )
    present = ctx.present_port_file()
    if present is None:
        return Result(name, WARN, f"{said}; freshness not checked: no port file")
    age = max(0.0, time.time() - present.stat().st_mtime)
    fresh_within, stale_after = 3 * interval + 2, max(10 * interval, 600.0)
    written = f"the port file was last written {age:.0f} s ago (a poll every {interval:g} s)"
    if age <= fresh_within:
        return Result(name, OK, f"{said}; {written}")
    if age <= stale_after:
        return Result(
            name,
            WARN,
            f"{said}; {written}: nutbridge writes it only when a value changes, so this may be fine",
            f"`nutbridge status {ctx.ups}` shows the last good poll",
        )
    return Result(
        name,
        FAIL,
        f"{said}, but stale: {written}: is nutbridge running?",
        f"{ctx.restart_daemon()}; `nutbridge status {ctx.ups}`",
    )


def check_upsmon(ctx: Context) -> Result:
    """6. upsmon.conf has a MONITOR line for the UPS, with a power value that counts."""
    name, path, ups = "upsmon", ctx.confpath / "upsmon.conf", ctx.ups
    try:
        words = find_monitor(ups, path)
    except OSError as exc:
        fix = f"run it as root: sudo nutbridge doctor {ups}" if os.geteuid() != 0 else "sudo apt install nut-client"
        return Result(name, FAIL, f"cannot read {path}: {describe(exc)}", fix)
    if words is None:
        return Result(
            name,
            FAIL,
            f"{path} has no MONITOR line for {ups}: upsmon does not watch it, so nothing shuts this host down",
            f"add `MONITOR {ups}@localhost 1 USER PASSWORD primary` to {path} (a user from upsd.users with "
            "`upsmon primary`), then `sudo systemctl restart nut-monitor`",
        )
    line = " ".join([*words[:3], "…", *words[5:6]])
    if len(words) >= 3 and words[2] == "0":
        return Result(
            name,
            WARN,
            f"{line}: power value 0, so upsmon never shuts this host down for it",
            f"set the power value to 1 in {path}, then `sudo systemctl restart nut-monitor`",
        )
    return Result(name, OK, line)


def check_nut_version(ctx: Context) -> Result:
    """7. The installed NUT is known, and the config's [nut] version (if set) agrees with `dummy-ups -V`."""
    name = "nut-version"
    setting = ctx.config.nut.version if ctx.config else None
    if ctx.dummy_ups is None:
        return Result(
            name, WARN, "dummy-ups not found on $PATH nor in NUT's driver folders", "sudo apt install nut-server"
        )
    installed = ctx.nut_version
    if installed is None:
        return Result(
            name,
            WARN,
            f"`{ctx.dummy_ups} -V` printed no version",
            f'set version = "X.Y.Z" in [nut] of {ctx.config_file}',
        )
    if setting is None:
        return Result(name, OK, f"NUT {installed} (dummy-ups -V): nutbridge writes what it reads")
    if setting != installed:
        return Result(
            name,
            WARN,
            f"[nut] version = {setting} in {ctx.config_file}, but dummy-ups -V says {installed}: "
            "alarms may be written in a form this NUT does not read",
            f'remove version from [nut] (then dummy-ups -V is asked) or set it to "{installed}"; '
            f"then {ctx.restart_daemon()}",
        )
    return Result(name, OK, f"NUT {installed}, as [nut] version says")


def check_nut_quirks(ctx: Context) -> Result:
    """7. What the installed NUT does differently (shared reference, nut-versions.md), where it matters here."""
    name = "nut-quirks"
    version = ctx.nut_version or (ctx.config.nut.version if ctx.config else None)
    if version is None:
        return Result(name, OK, "no NUT version known, so no quirks to check (see nut-version)")
    if version < V2_8_0:
        return Result(name, FAIL, f"NUT {version} has no dummy-once mode (2.8.0 and later)", "upgrade NUT to 2.8.0+")
    if version < V2_8_1:
        return Result(name, OK, f"NUT {version}: no known quirk for a port file")
    if version < V2_8_3:
        grace = ctx.config.monitor.nocomms_grace if ctx.config else None
        if grace is not None and grace < SAFE_GRACE:
            return Result(
                name,
                WARN,
                f"NUT {version}: upsmon shuts down at once when comms are lost while on battery (no DEADTIME), and "
                f"monitor.nocomms_grace = {grace:g} s turns a silence that long into a shutdown",
                f"set nocomms_grace = {SAFE_GRACE:g} (or more) in [monitor] of {ctx.config_file}; "
                f"then {ctx.restart_daemon()}",
            )
        return Result(
            name,
            OK,
            f"NUT {version}: a comms loss on battery shuts down at once; "
            f"nocomms_grace = {'?' if grace is None else f'{grace:g}'} s rides out shorter silences",
        )
    present = ctx.present_port_file()
    text = present.read_text(errors="replace") if present else ""
    if version < V2_8_4:  # 2.8.3
        answer = ctx.ask_upsc()
        shown = answer.values.get("ups.status", "").split()
        written = parse_values(text).get("ups.status", "").split()
        if answer.error is None and "ALARM" in shown and "ALARM" not in written:
            return Result(
                name,
                WARN,
                f"NUT {version} keeps an ALARM in ups.status that the port file no longer has (NUT issue #2928); "
                "with ALARMCRITICAL (the default) a comms loss then counts as critical",
                ctx.restart_driver(),
            )
        return Result(name, OK, f"NUT {version}: an ALARM in ups.status would stick; nutbridge writes ups.alarm only")
    hand_alarm = any(parsed and parsed[0] == "ups.alarm" for _, parsed in parse_lines(text))
    if hand_alarm:
        return Result(
            name,
            WARN,
            f"NUT {version} ignores ups.alarm: lines in a port file; the one in {present} does nothing",
            "write `ALARM text` instead (a bare ALARM clears it)",
        )
    return Result(name, OK, f"NUT {version}: alarms are the ALARM instruction, which nutbridge writes")


CHECKS: tuple[Callable[[Context], Result], ...] = (
    check_config,
    check_config_private,
    check_port_file,
    check_port_file_owner,
    check_port_file_disk,
    check_ups_conf,
    check_driver,
    check_daemon,
    check_upsc,
    check_upsmon,
    check_nut_version,
    check_nut_quirks,
)


def check_name(check: Callable[[Context], Result]) -> str:
    """``check_port_file`` → ``port-file``: the name its results carry."""
    return check.__name__.removeprefix("check_").replace("_", "-")


def run_checks(ctx: Context) -> list[Result]:
    """Every check that applies (the daemon's only under systemd); a file error is that check's FAIL."""
    results = []
    for check in CHECKS:
        if check is check_daemon and not ctx.systemctl:
            continue
        try:
            results.append(check(ctx))
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            results.append(
                Result(check_name(check), FAIL, f"{describe(exc)}{where}", f"sudo nutbridge doctor {ctx.ups}")
            )
        except subprocess.TimeoutExpired as exc:
            results.append(Result(check_name(check), FAIL, f"`{' '.join(map(str, exc.cmd))}` did not answer"))
    return results


# ------------------------------------------------------------------ the command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nutbridge doctor", description=__doc__.split("\n\n")[0])
    p.add_argument("ups", metavar="UPS", help="the UPS to check, as in ups.conf")
    p.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    p.add_argument("--upsd", metavar="HOST[:PORT]", help="where upsc asks (default: upsmon's MONITOR line, localhost)")
    p.add_argument("--upsc", metavar="CMD", help="the upsc command (default: $NUTBRIDGE_UPSC, else upsc)")
    p.add_argument("--systemctl", metavar="CMD", help="the systemctl command (default: $NUTBRIDGE_SYSTEMCTL, PATH)")
    p.add_argument("--no-systemd", action="store_true", help="do not ask systemd; look at pid files instead")
    return p


def gather(args: argparse.Namespace) -> Context:
    """The context from the environment and flags; ConfigError for a bad UPS name, ValueError for a bad CMD."""
    ups: str = args.ups
    confpath = nut_confpath()
    config_file = ups_config_file(ups)  # enphase-UPS.conf when only that one exists, as the daemon reads it
    config: Config | None = None
    error = None
    try:
        config = with_overrides(load_any(config_file))
    except ConfigError as exc:
        error = str(exc)
    port_file = config.nut.port_file if config is not None else None
    if port_file is None:
        try:
            port = read_ups_conf(confpath).get(ups, {}).get("port")
        except OSError:
            port = None
        port_file = Path(port_path(port, confpath)) if port else nut_statepath() / f"{ups}.dev"
    explicit = args.systemctl or os.environ.get("NUTBRIDGE_SYSTEMCTL")
    use_systemd = not args.no_systemd and (explicit or Path(SYSTEMD_RUN).is_dir())
    systemctl = systemctl_command(args.systemctl) if use_systemd else None
    upsd = args.upsd
    if upsd is None:
        try:
            words = find_monitor(ups, confpath / "upsmon.conf")
        except OSError:
            words = None
        upsd = words[1].partition("@")[2] if words and "@" in words[1] else "localhost"
    dummy_ups = find_dummy_ups()
    return Context(
        ups=ups,
        confpath=confpath,
        config_file=config_file,
        config=config,
        config_error=error,
        port_file=port_file,
        user=nut_user() or pwd.getpwuid(os.geteuid()),
        systemctl=systemctl,
        upsc=shlex.split(args.upsc or os.environ.get("NUTBRIDGE_UPSC") or shutil.which("upsc") or "upsc"),
        upsd=upsd,
        mounts=Path(os.environ.get("NUTBRIDGE_MOUNTS") or MOUNTINFO),
        dummy_ups=dummy_ups,
        nut_version=detect() if dummy_ups else None,
    )


def screen(ups: str, results: list[Result]) -> str:
    width = max(len(r.name) for r in results)
    lines = [f"nutbridge doctor {ups}"]
    for r in results:
        fix = f" — fix: {r.fix}" if r.fix and r.level != OK else ""
        lines.append(f"  {r.level:<4}  {r.name:<{width}}  {r.message}{fix}")
    failed = sum(r.level == FAIL for r in results)
    warned = sum(r.level == WARN for r in results)
    verdict = "all ok" if not failed and not warned else f"{failed} FAIL, {warned} warn"
    lines.append(f"{ups}: {verdict} ({len(results)} checks)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        ctx = gather(args)
    except (ConfigError, ValueError) as exc:
        print(f"nutbridge doctor: {exc}", file=sys.stderr)
        return EX_USAGE
    results = run_checks(ctx)
    failed = any(r.level == FAIL for r in results)
    if args.json:
        print(json.dumps({"ups": ctx.ups, "ok": not failed, "checks": [asdict(r) for r in results]}))
    else:
        print(screen(ctx.ups, results))
    return EX_FAIL if failed else EX_OK
