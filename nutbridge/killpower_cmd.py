"""``nutbridge killpower UPS [--restore] [-c FILE] [--dry-run]``: the power cycle, by hand or from a shutdown's last
stage (docs/nut.md "Power back by itself"). With ``[power] cycle = true`` it connects to the Tracer (the daemon
must be stopped: a serial line is exclusive), records the controller's settings in
$NUT_STATEPATH/nutbridge-UPS.controller, raises its low-voltage disconnect above the battery so it cuts the load
terminal, and sets its reconnect to ``[power] return_voltage`` so it brings the host back by itself; then reads
every register back. ``--dry-run`` prints the plan and writes nothing; ``--restore`` writes the record back.
Exit status 0 when armed (or restored, or nothing to restore), 1 when not, 2 for bad flags, 78 for a bad
configuration (or the cycle turned off).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from nutbridge.config import Config, ups_config_file
from nutbridge.devices.tracer.config import TracerConfig
from nutbridge.devices.tracer.cycle import Outcome, arm, record_file, restore
from nutbridge.errors import ConfigError, NutbridgeError
from nutbridge.nut.upsconf import nut_statepath
from nutbridge.system import load_any, setup_logging

EX_OK, EX_FAIL, EX_CONFIG = 0, 1, 78
DEADLINE = 30.0  # seconds the whole command may take: a shutdown must not hang on a silent controller


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nutbridge killpower", description=__doc__.split("\n\n")[0])
    p.add_argument("ups", metavar="UPS", help="the UPS whose nutbridge-UPS.toml names the Tracer")
    p.add_argument("-c", dest="config", metavar="FILE", help="the configuration file instead")
    p.add_argument("--restore", action="store_true", help="write the recorded settings back")
    p.add_argument("--dry-run", action="store_true", help="print what would be written; write nothing")
    return p


def read_config(args: argparse.Namespace) -> tuple[Config, TracerConfig]:
    """The daemon's configuration and its Tracer; ConfigError when the source is no Tracer."""
    config = load_any(Path(args.config) if args.config else ups_config_file(args.ups))  # no port file needed
    if not isinstance(config.source, TracerConfig) or config.source.url is None or config.test.enabled:
        raise ConfigError(f'{config.origin}: the power cycle needs a Tracer ([source] kind = "tracer" and its url)')
    return config, config.source


async def run(args: argparse.Namespace, config: Config, tracer: TracerConfig) -> Outcome | None:
    """Arm (or restore) over one connection."""
    from nutbridge.devices.tracer.source import TracerSource  # pymodbus only when a Tracer is reached

    assert tracer.url is not None
    record = record_file(nut_statepath(), args.ups)
    async with (
        asyncio.timeout(DEADLINE),
        TracerSource(tracer.url, device_id=tracer.device_id, timeout=tracer.timeout) as source,
        source.settings_link() as link,
    ):
        if args.restore:
            return await restore(link, record)
        return await arm(link, record, args.ups, config.power.return_voltage, dry_run=args.dry_run)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        config, tracer = read_config(args)
    except ConfigError as exc:
        print(f"nutbridge killpower: {exc}", file=sys.stderr)
        return EX_CONFIG
    if not config.power.cycle and not args.restore:
        print(f"nutbridge killpower: the power cycle is off; set cycle = true in [power] of {config.origin} "
              "(only when the host runs from the controller's load terminal)", file=sys.stderr)  # fmt: skip
        return EX_CONFIG
    setup_logging(0)
    record = record_file(nut_statepath(), args.ups)
    try:
        done = asyncio.run(run(args, config, tracer))
    except TimeoutError:
        left = "not restored" if args.restore else "not armed"
        print(f"nutbridge killpower: no answer from the Tracer within {DEADLINE:g} s; {left}", file=sys.stderr)
        return EX_FAIL
    except NutbridgeError as exc:
        print(f"nutbridge killpower: {exc}", file=sys.stderr)
        return EX_FAIL
    if done is None:
        print(f"nutbridge killpower: no record {record}: nothing to restore, nothing changed")
        return EX_OK
    what = "restored" if args.restore else "would write" if args.dry_run else "armed"
    print(f"{what} on {tracer.url}:")
    print("\n".join(f"  {line}" for line in done.lines()) or "  nothing differed")
    print("\n".join(f"  {note}" for note in done.notes), end="\n" if done.notes else "")
    if not args.dry_run:
        print(f"  {done.nv_writes} non-volatile writes; the record: {record}")
    return EX_OK
