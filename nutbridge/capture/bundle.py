"""What a capture writes: the answers as files named as pyenphase names its fixtures, each with its status,
``registers.json`` for a Tracer, ``capture.json`` saying what was taken; everything redacted first (the secrets the
configuration names, then whatever the redactor learns from the answers), log lines too; then the folder or
.tar.gz, built aside and renamed into place.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from nutbridge import __version__
from nutbridge.config import Config, keys_of
from nutbridge.devices.capture import Taken
from nutbridge.devices.modbus_map import Table
from nutbridge.redact import Redactor

NOTHING_TO_REDACT = "a Tracer's registers hold measurements and settings: no serial number, address or secret"


def file_name(path: str) -> str:
    """pyenphase's fixture name for an endpoint: the path without its query, '/' as '_' (``production.json``)."""
    return path.partition("?")[0].strip("/").replace("/", "_") or "index"


def known_secrets(config: Config) -> dict[str, str]:
    """What the ``[source]`` section says must not leave the house, by value: the kind of each, as its keys
    declare it (config_keys.Key): a secret, a URL's password, or what a value identifies (a user name that
    holds an @ is an e-mail address)."""
    section = config.source
    if section is None:
        return {}
    found: dict[str, str] = {}
    for name, spec in keys_of(type(section)).items():
        value = getattr(section, name)
        if not isinstance(value, str) or not value:
            continue  # unset, or no text (a Tracer's URL is parsed, and holds no password)
        if spec.secret:
            found[value] = "secret"
        elif spec.url:
            if password := urllib.parse.urlsplit(value).password:
                found[password] = "secret"
        elif spec.redact is not None:
            found[value] = "email" if spec.redact == "name" and "@" in value else spec.redact
    return found


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


def registers_json(device: dict[str, Any], blocks: dict[tuple[Table, int], list[int]]) -> str:
    """{"device": …, "input_registers": {address: [words]}, "holding_registers": …}, a block a line."""
    tables = []
    for table in (Table.INPUT, Table.HOLDING):
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
