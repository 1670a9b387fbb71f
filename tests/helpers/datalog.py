"""Reading back the polls a data log holds."""

from __future__ import annotations

import subprocess


def read_polls(proc: subprocess.Popen[str], count: int) -> list[str]:
    """The first ``count`` good polls the daemon printed (-v)."""
    assert proc.stdout is not None
    lines: list[str] = []
    while len(lines) < count:
        line = proc.stdout.readline()
        assert line, f"the daemon exited early: {proc.communicate(timeout=30)}"
        if " battery " in line:
            lines.append(line)
    return lines
