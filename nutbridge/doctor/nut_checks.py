"""The checks of NUT around nutbridge: ups.conf's section, the driver, the daemon under systemd, what upsc
answers and how fresh, upsmon's MONITOR line, and the installed NUT's version and quirks."""

from __future__ import annotations

import os
import time

from nutbridge.doctor.context import FAIL, OK, WARN, Context, Result
from nutbridge.doctor.host import nut_pid_folders, nut_state_folders, pid_alive, read_ups_conf
from nutbridge.files import describe
from nutbridge.nut.portfile_text import parse_lines, parse_values
from nutbridge.nut.upsconf import port_path
from nutbridge.nut.version import V2_8_3, V2_8_4, NutVersion
from nutbridge.system import find_monitor

V2_8_0, V2_8_1 = NutVersion(2, 8, 0), NutVersion(2, 8, 1)


SAFE_GRACE = 10.0  # rides out a glitch of 9 s at the default Modbus timeout (README, Comms loss)


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
