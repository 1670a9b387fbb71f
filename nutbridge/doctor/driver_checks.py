"""The checks of driver mode, where nutbridge is NUT's driver (``driver = nutbridge``): ups.conf's section, the
``nutbridge`` link in NUT's driver folder, the driver process, its socket (present, answering PING, data fresh),
and upsd connected to it (upsc answers with ``driver.name`` nutbridge, not "Data stale")."""

from __future__ import annotations

import contextlib
import os
import pwd
from pathlib import Path

import nutbridge
from nutbridge.doctor.context import FAIL, OK, WARN, Context, Result
from nutbridge.doctor.host import closed_to, nut_pid_folders, nut_state_folders, owner_text, pid_alive, read_ups_conf
from nutbridge.doctor.nut_checks import upsc_failure
from nutbridge.files import describe
from nutbridge.nut.driver_client import read_driver, socket_path
from nutbridge.nut.sock_wire import WireError
from nutbridge.nut.upsconf import MAX_UPS_CONF, driver_folder, parse_globals, parse_sections
from nutbridge.setup_texts import driver_program
from nutbridge.system import nut_user

DRIVER = "nutbridge"  # ups.conf's driver name; its socket and PID file are nutbridge-UPS


def check_driver_ups_conf(ctx: Context) -> Result:
    """3. ups.conf has [UPS] with driver = nutbridge, a port (the source) and config = this configuration."""
    name, path, ups = "driver-ups-conf", ctx.confpath / "ups.conf", ctx.ups
    try:
        entries = read_ups_conf(ctx.confpath).get(ups)
    except OSError as exc:
        fix = f"run it as root: sudo nutbridge doctor {ups}" if os.geteuid() != 0 else "sudo apt install nut-server"
        return Result(name, FAIL, f"cannot read {path}: {describe(exc)}", fix)
    fix = f"sudo nutbridge setup {ups} --driver --source URL (docs/nut.md, driver mode)"
    if entries is None:
        return Result(name, FAIL, f"{path} has no [{ups}] section", fix)
    wrong = []
    if entries.get("driver") != DRIVER:
        wrong.append(f"driver = {entries.get('driver', '(none)')}, not {DRIVER}")
    if not entries.get("port"):
        wrong.append("no port (the source's URL)")
    config = entries.get("config")
    if config is not None and os.path.realpath(config) != os.path.realpath(ctx.config_file):
        wrong.append(f"config = {config}, but this configuration is {ctx.config_file}")
    if wrong:
        return Result(name, FAIL, f"[{ups}] in {path}: {'; '.join(wrong)}", f"edit [{ups}] in {path}, or {fix}")
    return Result(name, OK, f"[{ups}] in {path}: driver = {DRIVER}, config {config or ctx.config_file}")


def check_driver_link(ctx: Context) -> Result:
    """3. NUT's driver folder has ``nutbridge``, and it runs this nutbridge's nutbridge-driver."""
    name = "driver-link"
    folder = driver_folder(ctx.confpath)
    fix = f"sudo ln -sf {driver_program() or '/usr/local/bin/nutbridge-driver'} {folder or '/lib/nut'}/{DRIVER}"
    if folder is None:
        return Result(name, FAIL, "NUT's driver folder is not found (/lib/nut, /usr/lib/nut, /usr/libexec/nut)", fix)
    link = folder / DRIVER
    if not link.exists():
        dangling = f" (a link to {os.readlink(link)}, which does not exist)" if link.is_symlink() else ""
        return Result(name, FAIL, f"{link} does not exist{dangling}: upsdrvctl cannot start the driver", fix)
    if not os.access(link, os.X_OK):
        return Result(name, FAIL, f"{link} is not executable", fix)
    program = driver_program()
    if program is None:
        return Result(name, WARN, f"{link} exists, but no nutbridge-driver beside this nutbridge to compare it with")
    if os.path.realpath(link) != os.path.realpath(program):
        return Result(name, WARN, f"{link} runs {os.path.realpath(link)}, not this nutbridge's {program}", fix)
    user = driver_user(ctx)
    if user is None:  # root: it reads what root reads
        return Result(name, OK, f"{link} runs {program}")
    for path, bits in driver_files(program):
        blocked = closed_to(path, user, bits)
        if blocked is not None:
            return Result(
                name,
                FAIL,
                f"the driver runs as {user.pw_name}, who may not read {blocked} ({owner_text(blocked.stat())}): "
                "it would fail at its start, once it has left root",
                f"install nutbridge where {user.pw_name} can read it (e.g. a venv in /opt), or open {blocked} to it",
            )
    return Result(name, OK, f"{link} runs {program}")


def driver_user(ctx: Context) -> pwd.struct_passwd | None:
    """Who nutbridge-driver becomes when NUT starts it as root: ups.conf's ``user`` (the section's, else the
    global one), else NUT's user; None for root or a user that does not exist (the driver says so itself)."""
    try:
        text = (ctx.confpath / "ups.conf").read_text(errors="replace")[:MAX_UPS_CONF]
    except OSError:
        return None
    entries = parse_sections(text).get(ctx.ups) or {}
    name = entries.get("user") or parse_globals(text).get("user")
    try:
        user = pwd.getpwnam(name) if name else nut_user()
    except KeyError:
        return None
    return user if user is not None and user.pw_uid != 0 else None


def driver_files(program: Path) -> list[tuple[Path, int]]:
    """What the driver reads after it left root: its script, the interpreter its first line names, and this
    package's folder (its modules are imported as they are needed)."""
    files = [(program, 4 | 1), (Path(nutbridge.__file__).parent, 4 | 1)]
    with contextlib.suppress(OSError), program.open("rb") as script:
        first = script.readline(4096)
        if first.startswith(b"#!"):
            files.append((Path(os.fsdecode(first[2:].split()[0])), 1))
    return files


def check_driver_process(ctx: Context) -> Result:
    """4. The driver runs: nut-driver@UPS is active (systemd), else nutbridge-UPS.pid names a live process."""
    name, ups = "driver", ctx.ups
    if ctx.systemctl:
        state = ctx.systemctl_says("is-active", f"nut-driver@{ups}")
        if state == "active" and not ignores_program_name(ctx):
            return Result(
                name,
                WARN,
                f"nut-driver@{ups} is active, but NUT 2.8.3 and later will not stop it: upsdrvctl signals a driver "
                "only if its process runs a program named after it, and nutbridge-driver's runs python3",
                f"sudo nutbridge setup {ups} --driver (it installs the drop-in that sets NUT_IGNORE_CHECKPROCNAME)",
            )
        if state == "active":
            return Result(name, OK, f"nut-driver@{ups} is active")
        fix = f"{ctx.restart_driver()}; `journalctl -u nut-driver@{ups}` says why it stopped"
        return Result(name, FAIL, f"nut-driver@{ups} is {state}", fix)
    driver = f"{DRIVER}-{ups}"
    pidfile = next((f / f"{driver}.pid" for f in nut_pid_folders() if (f / f"{driver}.pid").is_file()), None)
    if pidfile is None:
        where = ", ".join(str(f) for f in nut_pid_folders())
        return Result(name, FAIL, f"nutbridge-driver does not run for {ups}: no {driver}.pid in {where}",
                      ctx.restart_driver())  # fmt: skip
    try:
        pid = int(pidfile.read_text().split()[0])
    except (ValueError, IndexError):
        pid = 0
    if pid <= 0 or not pid_alive(pid):
        return Result(name, FAIL, f"{pidfile} names pid {pid}, which does not run", ctx.restart_driver())
    return Result(name, OK, f"nutbridge-driver runs (pid {pid})")


def ignores_program_name(ctx: Context) -> bool:
    """Whether nut-driver@UPS runs upsdrvctl with NUT_IGNORE_CHECKPROCNAME (setup's drop-in, or nut.conf, which the
    unit reads as its environment)."""
    said = ctx.systemctl_says("show", "--property=Environment", f"nut-driver@{ctx.ups}")
    if "NUT_IGNORE_CHECKPROCNAME=true" in said.split():
        return True
    try:
        nut_conf = (ctx.confpath / "nut.conf").read_text(errors="replace")[:MAX_UPS_CONF]
    except OSError:
        return False
    return any(line.strip().replace('"', "") == "NUT_IGNORE_CHECKPROCNAME=true" for line in nut_conf.splitlines())


def check_driver_socket(ctx: Context) -> Result:
    """5. The driver's socket is there and answers PING and a dump, and its data is fresh (no DATASTALE)."""
    name, ups = "driver-socket", ctx.ups
    found = [socket_path(ups, folder) for folder in nut_state_folders()]
    path = next((p for p in found if p.exists()), None)
    if path is None:
        where = " nor ".join(str(p) for p in found)
        return Result(name, FAIL, f"no driver socket {where}: the driver does not run", ctx.restart_driver())
    try:
        dump = read_driver(path, ctx.timeout)
    except PermissionError:
        return Result(name, WARN, f"{path}: not allowed to connect", f"run it as root: sudo nutbridge doctor {ups}")
    except (OSError, WireError) as exc:
        why = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
        return Result(name, FAIL, f"{path} does not answer PING: {why or 'no answer'}: the driver hangs or is gone",
                      ctx.restart_driver())  # fmt: skip
    said = f"{path} answers PING; ups.status {dump.values.get('ups.status', '(none)')}"
    if dump.stale:
        return Result(
            name,
            FAIL,
            f"{said}, but the data is stale: the device does not answer",
            f"check the device's cable and power; `journalctl -t {DRIVER}-{ups}` says what failed",
        )
    return Result(name, OK, f"{said}, data fresh")


def check_driver_upsc(ctx: Context) -> Result:
    """5. upsd is connected to the driver: upsc answers (not "Data stale"), with driver.name nutbridge."""
    name, address = "upsc", f"{ctx.ups}@{ctx.upsd}"
    answer = ctx.ask_upsc()
    if answer.error is not None:
        return upsc_failure(ctx, answer.error)
    driver = answer.values.get("driver.name")
    if driver != DRIVER:
        return Result(
            name,
            FAIL,
            f"upsc {address}: driver.name is {driver or '(none)'}, not {DRIVER}: upsd still runs the old driver",
            f"sudo upsdrvctl stop {ctx.ups}; {ctx.restart_driver()}; sudo systemctl reload nut-server",
        )
    status = answer.values.get("ups.status", "").strip() or "(none)"
    return Result(name, OK, f"upsc {address}: driver.name {DRIVER}, ups.status {status}, fresh")
