"""``nutbridge status [UPS] [--api URL] [--json]``: one screen about a running daemon, for a terminal or a script.

It asks the daemon's API (found from the UPS's config file, or given with ``--api``); with the API off it reads
the port file itself (what dummy-ups reads) and its age, or in driver mode (``driver = nutbridge`` in ups.conf,
``mode = "driver"`` in [nut]) asks the driver on its socket, as upsd does. A user who may read neither the
configuration nor the socket (both are NUT's group's) gets what upsd answers anyone, through ``upsc``. Exit status
0 when the last good poll is fresh, 3 when it is stale or the device is in nocomms, 1 when nothing can be asked;
78 for a bad configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nutbridge.config import Config, config_path, load
from nutbridge.errors import ConfigError
from nutbridge.nut.driver_client import read_driver, socket_path
from nutbridge.nut.portfile_text import parse_values
from nutbridge.nut.sock_wire import WireError
from nutbridge.nut.upsc import STALE, run_upsc
from nutbridge.nut.upsconf import MAX_UPS_CONF, nut_confpath, parse_sections

EX_FRESH, EX_UNREACHABLE, EX_STALE, EX_CONFIG = 0, 1, 3, 78
TIMEOUT = 5.0
SPARKS = "▁▂▃▄▅▆▇█"
WIDTH = 48  # characters of a sparkline


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nutbridge status", description=__doc__.split("\n\n")[0])
    p.add_argument("ups", nargs="?", metavar="UPS", help="the UPS whose nutbridge-UPS.toml names the API")
    p.add_argument("-c", dest="config", metavar="FILE", help="the configuration file instead")
    p.add_argument("--api", metavar="URL", help="the daemon's API, e.g. http://127.0.0.1:8080")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the screen")
    p.add_argument(
        "--upsd",
        metavar="HOST[:PORT]",
        default="localhost",
        help="where upsc asks when the configuration or the socket may not be read (default: localhost)",
    )
    return p


def api_url(config: Config) -> str | None:
    """Where the configured daemon answers (a wildcard listener is asked on loopback)."""
    if config.api.listen is None:
        return None
    host, port = config.api.listen
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - a listener's wildcard, asked locally
    scheme = "https" if config.api.tls_cert else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def get_json(url: str) -> tuple[int, Any]:
    """(status, JSON body) of a GET; 503s carry a body too."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310 - http(s) from our own config
            return response.status, json.loads(response.read(1024 * 1024))
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read(64 * 1024))
        except ValueError:
            return exc.code, {}


def sparkline(values: list[float], width: int = WIDTH) -> str:
    """``values`` squeezed into ``width`` block characters (the mean of each slice), scaled to their range."""
    if not values:
        return "(no data yet today)"
    step = max(1, -(-len(values) // width))
    means = [sum(chunk) / len(chunk) for chunk in (values[i : i + step] for i in range(0, len(values), step))]
    low, high = min(means), max(means)
    span = high - low or 1.0
    return "".join(SPARKS[min(len(SPARKS) - 1, int((v - low) / span * len(SPARKS)))] for v in means)


def from_api(url: str) -> dict[str, Any]:
    """What the daemon says: /api/status, /health and today's PV and charge from the log."""
    status_code, status = get_json(f"{url}/api/status")
    health_code, health = get_json(f"{url}/health")
    _, history = get_json(f"{url}/api/readings?fields=PV%20power%20L,battery%20percentage&step=300")
    rows = history.get("rows", []) if isinstance(history, dict) else []

    def column(i: int, scale: float = 1.0) -> list[float]:
        out = []
        for row in rows:
            try:
                out.append(float(row[i]) * scale)
            except (IndexError, TypeError, ValueError):
                continue
        return out

    variables = status.get("variables", {}) if status_code == 200 else {}
    return {
        "source": url,
        "fresh": health_code == 200,
        "reason": None if health_code == 200 else health.get("reason"),
        "comms": status.get("comms") if status_code == 200 else None,
        "age": status.get("age") if status_code == 200 else None,
        "variables": variables,
        "today": {"pv_watts": column(1), "charge_percent": column(2, 100.0)},
    }


def from_port_file(path: Path, interval: float) -> dict[str, Any]:
    """Without the API: the port file (or its -nocomms rename) and how old it is."""
    nocomms = path.with_name(path.name + "-nocomms")
    present = path if path.exists() else nocomms if nocomms.exists() else None
    if present is None:
        raise FileNotFoundError(f"{path} (nor {nocomms.name})")
    age = time.time() - present.stat().st_mtime
    lost = present == nocomms
    fresh = not lost and age <= 3 * max(interval, 1.0) + 2  # the port file is rewritten at most once a second
    return {
        "source": str(present),
        "fresh": fresh,
        "reason": "comms lost: the port file is renamed -nocomms" if lost else None if fresh else f"{age:.0f} s old",
        "comms": "lost" if lost else "ok",
        "age": round(age, 1),
        "variables": dict(parse_values(present.read_text(errors="replace"))),
        "today": {"pv_watts": [], "charge_percent": []},
    }


def nut_view(source: str, values: dict[str, str], stale_because: str | None) -> dict[str, Any]:
    """What NUT's side says, without the API's age or the data log's sparklines: stale when ``stale_because``."""
    return {
        "source": source,
        "fresh": stale_because is None,
        "reason": stale_because,
        "comms": "ok" if stale_because is None else "lost",
        "age": None,
        "variables": values,
        "today": {"pv_watts": [], "charge_percent": []},
    }


def from_driver(path: Path) -> dict[str, Any]:
    """Driver mode without the API: what the driver publishes on its socket, and whether it calls it stale."""
    try:
        dump = read_driver(path, TIMEOUT)
    except WireError as exc:
        raise ValueError(str(exc)) from exc
    why = "the driver says the data is stale: the device does not answer" if dump.stale else None
    return nut_view(str(path), dump.values, why)


def from_upsd(ups: str, upsd: str) -> dict[str, Any]:
    """What upsd says of ``ups`` (``upsc UPS@HOST``): the view any user may have; OSError when it cannot tell."""
    answer = run_upsc([os.environ.get("NUTBRIDGE_UPSC") or "upsc", f"{ups}@{upsd}"], TIMEOUT)
    if answer.error is not None and answer.error != STALE:
        raise OSError(answer.error)
    why = "upsd says the data is stale" if answer.error == STALE else None
    return nut_view(f"upsc {ups}@{upsd}", answer.values, why)


def driver_section(ups: str) -> dict[str, str] | None:
    """[UPS] of ups.conf when it runs nutbridge as NUT's driver (``driver = nutbridge``), else None."""
    try:
        text = (nut_confpath() / "ups.conf").read_text(errors="replace")[:MAX_UPS_CONF]
    except OSError:
        return None
    section = parse_sections(text).get(ups)
    return section if section is not None and section.get("driver") == "nutbridge" else None


def words(status: str) -> str:
    """ups.status in words."""
    flags = status.split()
    said = ["on line power or solar" if "OL" in flags else "on battery" if "OB" in flags else "unknown power"]
    said += [w for f, w in (("LB", "low battery: shutdown coming"), ("CHRG", "charging"), ("DISCHRG", "discharging"),
                            ("ALARM", "alarm")) if f in flags]  # fmt: skip
    return ", ".join(said)


def screen(name: str, info: dict[str, Any]) -> str:
    v = info["variables"]

    def get(key: str, unit: str = "") -> str:
        value = v.get(key)
        return "-" if value in (None, "") else f"{value}{unit}"

    runtime = v.get("battery.runtime")
    try:
        minutes = int(float(runtime)) // 60 if runtime else None
    except ValueError:
        minutes = None
    lines = [
        f"{name}: {get('ups.status')} ({words(v.get('ups.status') or '')})",
        f"  {'fresh' if info['fresh'] else 'STALE'}: comms {info['comms'] or '-'}, last good poll "
        + (f"{info['age']:.0f} s ago" if isinstance(info["age"], int | float) else "unknown")
        + (f" ({info['reason']})" if info["reason"] else ""),
        f"  battery {get('battery.charge', ' %')}  {get('battery.voltage', ' V')}  {get('battery.current', ' A')}"
        f"  runtime {'-' if minutes is None else f'{minutes // 60} h {minutes % 60:02d} min'}",
        f"  PV {get('input.realpower', ' W')}  load {get('output.realpower', ' W')}  alarm {get('ups.alarm')}",
    ]
    if info["today"]["pv_watts"]:
        lines.append(
            f"  today PV     {sparkline(info['today']['pv_watts'])}  max {max(info['today']['pv_watts']):.0f} W"
        )
    if info["today"]["charge_percent"]:
        lines.append(f"  today charge {sparkline(info['today']['charge_percent'])}")
    lines.append(f"  ({info['source']})")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    section = driver_section(args.ups) if args.ups else None
    file = Path(args.config) if args.config else None
    if file is None and args.ups:
        named = section.get("config") if section is not None else None
        file = Path(named) if named else config_path(args.ups)  # nutbridge-driver reads what its section names
    try:
        config = load(file) if file is not None and (section is None or file.exists()) else Config()
    except ConfigError as exc:
        if (
            args.ups
            and not (args.config or args.api)
            and isinstance(exc.__cause__, PermissionError | FileNotFoundError)
        ):
            # NUT's folder and nutbridge's file are NUT's user's: upsd answers anyone with the same variables
            print(f"nutbridge status: {exc}; asking upsd", file=sys.stderr)
            return show(args, args.ups, lambda: from_upsd(args.ups, args.upsd), f"upsc {args.ups}@{args.upsd}")
        print(f"nutbridge status: {exc}", file=sys.stderr)
        return EX_CONFIG
    name = args.ups or (Path(args.config).stem if args.config else "nutbridge")
    url = args.api or api_url(config)
    driver = section is not None or config.nut.mode == "driver"
    sock = socket_path(args.ups, Path(os.environ.get("NUT_STATEPATH") or "/run/nut")) if args.ups else None
    if url:
        return show(args, name, lambda: from_api(url.rstrip("/")), url)
    if driver and sock is not None:
        return show(args, name, lambda: from_driver_or_upsd(sock, name, args.upsd), str(sock))
    if config.nut.port_file is not None:
        port_file, interval = config.nut.port_file, config.monitor.poll_interval
        return show(args, name, lambda: from_port_file(port_file, interval), str(port_file))
    print("nutbridge status: no API and no port file: give UPS, -c FILE or --api URL", file=sys.stderr)
    return EX_UNREACHABLE


def from_driver_or_upsd(sock: Path, ups: str, upsd: str) -> dict[str, Any]:
    """The driver on its socket; upsd, which relays the same, when this user may not open the socket."""
    try:
        return from_driver(sock)
    except PermissionError:
        return from_upsd(ups, upsd)


def show(args: argparse.Namespace, name: str, ask: Callable[[], dict[str, Any]], asked: str) -> int:
    """Ask, print the screen (or JSON), and the exit status."""
    try:
        info = ask()
    except (OSError, ValueError) as exc:
        print(f"nutbridge status: cannot ask {asked}: {exc}", file=sys.stderr)
        return EX_UNREACHABLE
    print(json.dumps({"ups": name, **info}) if args.json else screen(name, info))
    return EX_FRESH if info["fresh"] else EX_STALE
