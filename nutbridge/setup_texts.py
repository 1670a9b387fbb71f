"""What `nutbridge setup` writes, as text: the files shipped in nutbridge/data, the configuration rendered from
the sample (for driver mode too), ups.conf's section for our UPS (for dummy-ups or for nutbridge-driver), the
driver program to link, and the unit with this install's binary."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tomllib
from importlib import resources
from pathlib import Path

from nutbridge.config import Config, from_mapping, with_overrides
from nutbridge.errors import ConfigError

UNIT = "nutbridge@.service"


DROP_IN = "nut-driver-restart.conf"
DRIVER_DROP_IN = "nut-driver-nutbridge.conf"  # driver mode: upsdrvctl may stop a Python driver


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


def driver_mode(text: str, ups: str) -> str:
    """A rendered configuration for driver mode: ``mode = "driver"`` in [nut], and no port file."""
    note = f"# Set by `nutbridge setup {ups} --driver`: nutbridge is NUT's driver (ups.conf's [{ups}]); no port file.\n"
    text = text.replace("\n[nut]\n", f'\n[nut]\n{note}mode = "driver"\n', 1)
    return re.sub(r"^port_file = ", "# port_file = ", text, count=1, flags=re.MULTILINE)


def validate(text: str, path: Path) -> Config:
    """The configuration ``text`` would be at ``path``, checked by the loader as the daemon will read it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: the configuration would not be valid TOML: {exc}") from exc
    return with_overrides(from_mapping(data, str(path), base_dir=path.parent))


def ups_section(ups: str, port_file: Path) -> str:
    """The ups.conf section for ``ups``, as etc/ups.conf.sample has it."""
    port = conf_value(str(port_file))
    return (
        f'[{ups}]\n\tdriver = dummy-ups\n\tport = {port}\n\tmode = dummy-once\n\tdesc = "EPEver Tracer via nutbridge"\n'
    )


def driver_section(ups: str, url: str, config_file: Path) -> str:
    """The ups.conf section that has upsdrvctl start nutbridge-driver for ``ups`` (docs/nut.md, driver mode)."""
    return (
        f"[{ups}]\n\tdriver = nutbridge\n\tport = {conf_value(url)}\n\tconfig = {conf_value(str(config_file))}\n"
        f'\tdesc = "EPEver Tracer via nutbridge"\n'
    )


def conf_value(value: str) -> str:
    """``value`` as ups.conf takes it: bare when plain, else in double quotes with \\ and \" escaped."""
    if PLAIN_PORT.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def driver_program() -> Path | None:
    """The ``nutbridge-driver`` console script to link into NUT's driver folder: beside this interpreter, else
    on $PATH."""
    here = Path(sys.executable).parent / "nutbridge-driver"
    if os.access(here, os.X_OK):
        return here
    found = shutil.which("nutbridge-driver")
    return Path(found) if found else None


def unit_text() -> tuple[str, str | None]:
    """The unit to install, and a note when its ExecStart had to name another nutbridge than UNIT_BINARY."""
    text = data_text(UNIT)
    if os.access(UNIT_BINARY, os.X_OK):
        return text, None
    here = Path(sys.executable).parent / "nutbridge"  # the console script beside this interpreter
    if not os.access(here, os.X_OK):
        return text, f"{UNIT_BINARY} does not exist: link it to your nutbridge before starting the unit"
    return text.replace(UNIT_BINARY, str(here)), f"the unit runs {here} ({UNIT_BINARY} does not exist)"
