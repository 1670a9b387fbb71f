"""``nutbridge capture [UPS] [-c CONFIG] [-o OUT]``: the device's own answers, redacted, for a bug report.

It reads the configuration the daemon reads, connects to the source once and saves every answer nutbridge
reads, raw, as a folder (or a .tar.gz): for an HTTP source one file per endpoint, named after the path as
pyenphase names its fixtures (``/ivp/meters/readings`` → ``ivp_meters_readings``, its status in
``ivp_meters_readings_log.json``), for a Tracer the register blocks as ``registers.json``; ``capture.json`` says
what was taken, when, by which nutbridge. The daemon need not run, and the port file is never touched.

What must not leave the house is replaced before anything is written: the token and the passwords are never
written; serial numbers (and the Powerwall's DIN and gateway id), site and user ids, site names, e-mail and MAC
addresses become placeholders, each value always the same one, so the fixture stays consistent across files.
Exit status 0 when something was saved, 1 when nothing answered (or OUT exists), 2 without a UPS or -c, 78 for
a bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from nutbridge import __version__
from nutbridge.config import (
    Config,
    ups_config_file,
    with_overrides,
)
from nutbridge.devices.enphase.config import EnvoyConfig
from nutbridge.devices.enphase.source import SOFTWARE, EnvoySource
from nutbridge.devices.http import HttpSource
from nutbridge.devices.modbus import ModbusTarget
from nutbridge.devices.powerwall.config import PowerwallConfig
from nutbridge.devices.powerwall.source import PowerwallSource
from nutbridge.devices.tracer import registers as tmap
from nutbridge.devices.tracer.config import TracerConfig
from nutbridge.devices.tracer.source import TracerSource
from nutbridge.errors import ConfigError, NutbridgeError, SourceError
from nutbridge.redact import KINDS, Redactor
from nutbridge.simulator.config import SimulatorConfig
from nutbridge.system import load_any, setup_logging

EX_OK, EX_FAIL, EX_CONFIG = 0, 1, 78
# Besides what EnvoySource reads in a poll: what pyenphase and Home Assistant read, so a maintainer can compare.
ENVOY_EXTRAS = (
    "/info",
    "/ivp/ensemble/inventory",
    "/ivp/ensemble/secctrl",
    "/ivp/ensemble/relay",
    "/ivp/ensemble/status",
    "/api/v1/production",
    "/production.json?details=1",
    "/ivp/meters",
    "/ivp/meters/readings",
    "/ivp/livedata/status",
)
NOTHING_TO_REDACT = "a Tracer's registers hold measurements and settings: no serial number, address or secret"

# --- taking the answers -----------------------------------------------------------------------------------------


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer as it came: its status, content type and body."""

    status: int
    content_type: str
    body: bytes


@dataclass
class Taken:
    """What one connection to the source gave: HTTP answers by path (with its query) or register blocks."""

    kind: str
    answers: dict[str, Answer] = field(default_factory=dict)
    registers: dict[tuple[tmap.Table, int], list[int]] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)  # what the source says about the device
    firmware: str | None = None
    problems: list[str] = field(default_factory=list)

    async def attempt(self, work: Awaitable[T]) -> T | None:
        """``work``'s result; a SourceError is a problem to report (the answers taken so far stay): None."""
        try:
            return await work
        except SourceError as exc:
            self.problems.append(str(exc))
            return None


class Recording(HttpSource):
    """An HTTP source whose client keeps a copy of every answer: the answers are exactly the source's own
    requests, made by its own code (token, renewal, timeouts), so the capture cannot drift from what it reads."""

    answers: dict[str, Answer]

    def make_client(self) -> httpx.AsyncClient:
        client = super().make_client()
        client.event_hooks["response"].append(self._keep)
        return client

    async def _keep(self, response: httpx.Response) -> None:
        await response.aread()  # inside the source's timeout: the hook runs within its GET
        path = response.request.url.raw_path.decode("ascii", "replace")
        self.answers[path] = Answer(response.status_code, response.headers.get("content-type", ""), response.content)


class RecordingEnvoy(Recording, EnvoySource):
    """EnvoySource, recorded."""


class RecordingPowerwall(Recording, PowerwallSource):
    """PowerwallSource, recorded."""


class RecordingTracer(TracerSource):
    """TracerSource keeping each register block it reads, at start-up and in the poll."""

    blocks: dict[tuple[tmap.Table, int], list[int]]

    async def _read(self, req: tmap.Request) -> list[int]:
        words = list(await super()._read(req))
        self.blocks[req.table, req.address] = words
        return words


async def take_envoy(config: Config, envoy: EnvoyConfig, redactor: Redactor) -> Taken:
    """A poll as the daemon makes it, then the extra endpoints once each (no token renewal for those: an
    endpoint this token may not read must not cost a cloud login)."""
    from nutbridge.daemon import state_dir
    from nutbridge.devices.enphase.family import tokens as token_cache

    taken = Taken("envoy")
    tokens = token_cache(envoy, state_dir(config))
    source = RecordingEnvoy(envoy.host, serial=envoy.serial or "", tokens=tokens, timeout=envoy.api_timeout,
                            meters=envoy.meters, load_kwh=envoy.load_kwh)  # fmt: skip
    source.answers = taken.answers
    async with source:
        await taken.attempt(source.read())
        token = await taken.attempt(tokens.get())
        if token is not None:
            redactor.add("secret", token)  # should a gateway ever echo it
            for path in ENVOY_EXTRAS:
                if path not in taken.answers:
                    await taken.attempt(source.request(path, headers={"Authorization": f"Bearer {token}"}))
        if source.info is not None:
            taken.firmware = source.info.firmware
    for path in ("/info.xml", "/info"):  # the poll may have failed before it read the firmware
        answer = taken.answers.get(path)
        found = SOFTWARE.search(answer.body.decode("utf-8", "replace")) if answer else None
        taken.firmware = taken.firmware or (found.group(1) if found else None)
    return taken


async def take_powerwall(powerwall: PowerwallConfig) -> Taken:
    """A poll as the daemon makes it: the routes read once per connection, then the poll's."""
    taken = Taken("powerwall")
    source = RecordingPowerwall(powerwall.url, timeout=powerwall.timeout)
    source.answers = taken.answers
    async with source:
        await taken.attempt(source.read())
        if source.info is not None:
            taken.firmware = source.info.firmware
    return taken


async def take_tracer(kind: str, tracer: RecordingTracer) -> Taken:
    """A connection (rated data, battery settings, identification) and one poll, as the daemon makes them."""
    taken = Taken(kind)
    tracer.blocks = taken.registers
    async with tracer:
        await taken.attempt(tracer.read())
        info = tracer.info  # before the close, which forgets it
    taken.device = {"device_id": tracer.device_id}
    if info is not None:
        taken.device |= {"mfr": info.mfr, "model": info.model, "firmware": info.firmware}
        taken.firmware = info.firmware
    return taken


async def take_simulator(sim: SimulatorConfig) -> Taken:
    """The built-in simulator, started as the daemon starts it, read through the real Tracer client."""
    from nutbridge.simulator.physics import Plant
    from nutbridge.simulator.server import SimulatedTracer

    now = time.localtime()
    seconds = sim.start if sim.start is not None else now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec
    async with SimulatedTracer(Plant(seconds=seconds), speed=sim.speed) as server:
        port = await server.start_tcp("127.0.0.1", 0)
        target = ModbusTarget(scheme="tcp", host="127.0.0.1", port=port)
        return await take_tracer("simulator", RecordingTracer(target, timeout=sim.timeout))


async def take(config: Config, redactor: Redactor) -> Taken:
    """Connect to the configured source once and take its answers."""
    source = config.source
    if isinstance(source, EnvoyConfig):
        return await take_envoy(config, source, redactor)
    if isinstance(source, PowerwallConfig):
        return await take_powerwall(source)
    if isinstance(source, TracerConfig) and source.url is not None:
        return await take_tracer(
            "tracer", RecordingTracer(source.url, device_id=source.device_id, timeout=source.timeout)
        )
    return await take_simulator(source if isinstance(source, SimulatorConfig) else SimulatorConfig())


# --- writing ----------------------------------------------------------------------------------------------------


def file_name(path: str) -> str:
    """pyenphase's fixture name for an endpoint: the path without its query, '/' as '_' (``production.json``)."""
    return path.partition("?")[0].strip("/").replace("/", "_") or "index"


def known_secrets(config: Config) -> dict[str, str]:
    """What the configuration says must not leave the house, by value: the kind of each."""
    source = config.source
    if isinstance(source, EnvoyConfig):
        found = {source.serial: "serial", source.password: "secret"}
        if source.username:
            found[source.username] = "email" if "@" in source.username else "name"
        return {value: kind for value, kind in found.items() if value}
    if isinstance(source, PowerwallConfig):
        password = urllib.parse.urlsplit(source.url).password
        return {password: "secret"} if password else {}
    return {}


class HiddenInLogs(logging.Filter):
    """Log lines name the device (``Enphase IQ Gateway HOST (serial …)``), and a user pastes what the terminal
    said into the report: the values known to go are replaced there too (not counted as redactions)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redactor.apply(record.getMessage(), count=False), ()
        return True


def files_of(taken: Taken, redactor: Redactor) -> dict[str, str]:
    """The capture's files by name, redacted, capture.json included."""
    texts = {path: answer.body.decode("utf-8", "replace") for path, answer in taken.answers.items()}
    for text in texts.values():
        redactor.learn(text)
    files: dict[str, str] = {}
    endpoints: dict[str, dict[str, Any]] = {}
    for path, answer in sorted(taken.answers.items()):
        name = file_name(path)
        endpoints[path] = {"status": answer.status, "file": name if answer.status == 200 else None}
        if answer.status == 200:
            files[name] = redactor.apply(texts[path])
        log = {"headers": {"content-type": answer.content_type}, "code": answer.status}
        files[f"{name}_log.json"] = json.dumps(log) + "\n"
    if taken.registers:
        files["registers.json"] = registers_json(taken.device, taken.registers)
    about: dict[str, Any] = {
        "nutbridge": __version__,
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source": taken.kind,
        "firmware": taken.firmware,
    }
    if taken.answers:
        about["endpoints"] = endpoints
    else:
        blocks = sorted(taken.registers.items(), key=lambda block: block[0][1])
        about["registers"] = {f"0x{address:04X}": len(words) for (_, address), words in blocks}
    about["redacted"] = redactor.summary() if taken.answers else NOTHING_TO_REDACT
    about["problems"] = [redactor.apply(p) for p in taken.problems]
    files["capture.json"] = redactor.apply(json.dumps(about, indent=2)) + "\n"
    return files


def registers_json(device: dict[str, Any], blocks: dict[tuple[tmap.Table, int], list[int]]) -> str:
    """{"device": …, "input_registers": {address: [words]}, "holding_registers": …}, a block a line."""
    tables = []
    for table in (tmap.Table.INPUT, tmap.Table.HOLDING):
        rows = [f'    "0x{a:04X}": {json.dumps(words)}' for (t, a), words in sorted(blocks.items()) if t is table]
        tables.append(f'  "{table.name.lower()}_registers": {{\n' + ",\n".join(rows) + "\n  }")
    return "{\n" + f'  "device": {json.dumps(device)},\n' + ",\n".join(tables) + "\n}\n"


def default_output(ups: str | None) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(f"nutbridge-capture-{ups}-{stamp}" if ups else f"nutbridge-capture-{stamp}")


def is_archive(out: Path) -> bool:
    return out.name.endswith((".tar.gz", ".tgz"))


def anonymous(member: tarfile.TarInfo) -> tarfile.TarInfo:
    """A tar entry without the owner's user and group names, which could be a person's login."""
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def write(files: dict[str, str], out: Path) -> None:
    """A folder, or a .tar.gz holding one: built aside, then renamed into place, so no half capture is left."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".nutbridge-capture-", dir=out.parent))
    try:
        name = out.name.removesuffix(".tar.gz").removesuffix(".tgz") if is_archive(out) else out.name
        folder = work / name
        folder.mkdir()
        for file, text in files.items():
            (folder / file).write_text(text, encoding="utf-8")
        if is_archive(out):
            with tarfile.open(work / "capture.tar.gz", "w:gz") as tar:
                tar.add(folder, arcname=name, filter=anonymous)
            os.replace(work / "capture.tar.gz", out)
        else:
            folder.rename(out)  # refused when ``out`` appeared meanwhile and is not empty
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the command ------------------------------------------------------------------------------------------------


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
