"""What `nutbridge setup` writes, as text: the files shipped in nutbridge/data, the configuration rendered from
the sample, ups.conf's section for our UPS, and the unit with this install's binary."""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from importlib import resources
from pathlib import Path

from nutbridge.config import Config, from_mapping, with_overrides
from nutbridge.errors import ConfigError

UNIT = "nutbridge@.service"


DROP_IN = "nut-driver-restart.conf"


SAMPLE_CONFIG = "nutbridge-solar.toml"


SAMPLE_PORT_FILE = "solar.dev.sample"


UNIT_BINARY = "/usr/local/bin/nutbridge"  # what the shipped unit runs


PLAIN_PORT = re.compile(r"^[A-Za-z0-9_./+-]+$")  # written without quotes in ups.conf


def data_text(name: str) -> str:
    """A file shipped in the package's data folder: the systemd unit and drop-in, the samples."""
    return resources.files("nutbridge").joinpath("data", name).read_text(encoding="utf-8")


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
