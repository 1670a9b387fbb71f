"""``nutbridge capture [UPS] [-c CONFIG] [-o OUT]``: the device's own answers, redacted, for a bug report.

It reads the configuration the daemon reads, connects to the source once and saves every answer nutbridge
reads, raw, as a folder (or a .tar.gz): for an HTTP source one file per endpoint, named after the path as
pyenphase names its fixtures (``/ivp/meters/readings`` → ``ivp_meters_readings``, its status in
``ivp_meters_readings_log.json``), for a Tracer the register blocks as ``registers.json``; ``capture.json`` says
what was taken, when, by which nutbridge. The daemon need not run, and the port file is never touched.

What must not leave the house is replaced before anything is written: the token and the passwords are never
written; serial numbers (and the Powerwall's DIN and gateway id), site and user ids, site names, e-mail and MAC
addresses become placeholders, each value always the same one, so the fixture stays consistent across files.
Exit status 0 when something was saved, 1 when nothing answered (or OUT exists, or the source's device family
has no capture hook), 2 without a UPS or -c, 78 for a bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nutbridge.capture.bundle import HiddenInLogs, default_output, files_of, known_secrets, write
from nutbridge.capture.take import take
from nutbridge.config import Config, ups_config_file, with_overrides
from nutbridge.errors import ConfigError, NutbridgeError
from nutbridge.redact import KINDS, Redactor
from nutbridge.system import load_any, setup_logging

# The package's modules: take (one connection through the family's capture hook, every answer recorded), bundle
# (redaction, the files, the folder or archive); this module is the command (flags, the configuration, the report).

EX_OK, EX_FAIL, EX_CONFIG = 0, 1, 78


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nutbridge capture", description=__doc__.split("\n\n")[0])
    p.add_argument("ups", nargs="?", metavar="UPS", help="the UPS whose configuration names the device")
    p.add_argument("-c", dest="config", metavar="FILE", help="the configuration file instead")
    p.add_argument("-o", dest="out", metavar="OUT",
                   help="a folder, or FILE.tar.gz (default: nutbridge-capture-UPS-YYYYmmdd-HHMMSS/ here)")  # fmt: skip
    return p


def read_config(args: argparse.Namespace) -> Config:
    """The daemon's configuration, checked as the daemon checks it; TEST mode has nothing real to capture."""
    config = with_overrides(load_any(Path(args.config) if args.config else ups_config_file(args.ups)))
    if config.test.enabled:
        raise ConfigError(f"{config.origin}: [test] is enabled: the answers are nutbridge's own fixtures")
    return config


def report(out: Path, files: Iterable[str], about: dict[str, Any]) -> str:
    lines = [f"saved {out}:"]
    endpoints = about.get("endpoints", {})
    for path, row in endpoints.items():
        lines.append(f"  {path:<32} HTTP {row['status']}" + (f" → {row['file']}" if row["file"] else ""))
    if not endpoints:
        lines += [f"  {name}" for name in sorted(files)]
    redacted = about["redacted"]
    if isinstance(redacted, str):
        lines.append(f"redacted: nothing ({redacted})")
    else:
        said = ", ".join(f"{KINDS[kind]} {n['values']}" for kind, n in redacted.items()) or "nothing found"
        places = sum(n["places"] for n in redacted.values())
        lines.append(f"redacted: {said} ({places} replacements); the token and passwords are never written")
    lines += [f"warning: {problem}" for problem in about["problems"]]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if not args.config and not args.ups:
        parser().error("name the UPS (its nutbridge-UPS.toml is read) or the configuration file with -c FILE")
    try:
        config = read_config(args)
    except ConfigError as exc:
        print(f"nutbridge capture: {exc}", file=sys.stderr)
        return EX_CONFIG
    out = Path(args.out) if args.out else default_output(args.ups)
    if out.exists():
        print(f"nutbridge capture: {out} exists; name another with -o", file=sys.stderr)
        return EX_FAIL
    redactor = Redactor()
    for value, kind in known_secrets(config).items():
        redactor.add(kind, value)
    setup_logging(0)
    for handler in logging.getLogger().handlers:
        handler.addFilter(HiddenInLogs(redactor))
    try:
        taken = asyncio.run(take(config, redactor))
    except NutbridgeError as exc:
        print(f"nutbridge capture: {redactor.apply(str(exc), count=False)}", file=sys.stderr)
        return EX_FAIL
    files = files_of(taken, redactor)
    about = json.loads(files["capture.json"])
    if not taken.answers and not taken.registers:
        problems = "; ".join(about["problems"]) or "no answer"
        print(f"nutbridge capture: nothing answered, nothing saved: {problems}", file=sys.stderr)
        return EX_FAIL
    try:
        write(files, out)
    except OSError as exc:
        print(f"nutbridge capture: cannot write {out}: {exc}", file=sys.stderr)
        return EX_FAIL
    print(report(out, files, about))
    return EX_OK
