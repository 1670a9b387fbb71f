"""Ask upsd about a UPS through NUT's own ``upsc``: what the doctor checks and what ``nutbridge status`` shows
to a user who may read neither nutbridge's configuration nor the driver's socket (upsd answers anyone)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

STALE = "Error: Data stale"


@dataclass(frozen=True, slots=True)
class UpscAnswer:
    """upsc's variables, or the error it printed."""

    values: dict[str, str]
    error: str | None


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
