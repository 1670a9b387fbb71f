"""The port file's text as dummy-ups reads it: its lines parsed, values cleaned, generated variables merged in
place, and the lines a person wrote told apart from nutbridge's own. Pure functions of text; no I/O.

Facts from real NUT that shape it (shared/reference/nut-and-enphase-monitor.md part 2, nut-versions.md):
- Deleting a line does not delete the variable; ``name: ""`` does. A bare ``name:`` repeats the previous
  line's value, so it is never written.
- ``#`` starts a comment, also after a value; inside a value it breaks the 2.8.0 parser. Values are cut
  at 127 characters.

Lines are split on ``\\n`` only: a hand-written line keeps its ``\\r``, form feeds and U+2028 verbatim.
A setting nutbridge writes itself carries the marker ``# nutbridge``; one without it was set by hand.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping

MAX_VALUE = 127  # dummy-ups truncates longer values
MARK = "# nutbridge"
KEY_LINE = re.compile(r"^[ \t]*([A-Za-z0-9_][A-Za-z0-9_.\-]*):(.*)$", re.DOTALL)
ALARM_LINE = re.compile(r"^[ \t]*ALARM(?:[ \t].*)?$", re.DOTALL)
UNSAFE = re.compile(r'[#"\\\x00-\x1f\x7f]')  # what the dummy-ups tokenizer would misread
ALARM = "ALARM"  # the instruction NUT 2.8.4+ reads: ``ALARM <text>`` sets ups.alarm, a bare ``ALARM`` clears it


def format_value(value: str | None) -> str:
    """A value as dummy-ups reads it back: cleaned, at most 127 characters, ``""`` for none."""
    if value is None:
        return '""'
    text = " ".join(UNSAFE.sub(" ", value).split())[:MAX_VALUE].strip()
    return text or '""'


def split_lines(text: str) -> list[str]:
    """Lines as dummy-ups sees them: split on ``\\n`` only, the last newline dropped."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def strip_comment(value: str) -> tuple[str, str]:
    """(value, comment): a ``#`` outside quotes starts a comment, as in NUT's parser."""
    if "#" not in value:
        return value, ""
    quoted = False
    for i, ch in enumerate(value):
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return value[:i], value[i:]
    return value, ""


def parse_line(line: str) -> tuple[str, str, bool] | None:
    """(name, value, marked) for a ``name: value`` line, else None."""
    match = KEY_LINE.match(line)
    if not match:
        return None
    value, comment = strip_comment(match[2])
    return match[1], value.strip().strip('"'), comment.strip() == MARK


@functools.lru_cache(maxsize=4)
def parse_lines(text: str) -> tuple[tuple[str, tuple[str, str, bool] | None], ...]:
    """Each line with its parse; cached, since one poll reads the same text for settings and for the merge."""
    return tuple((line, parse_line(line)) for line in split_lines(text))


def parse_values(text: str) -> dict[str, str]:
    """Variable → value for every ``name: value`` line (the last one wins, as in dummy-ups)."""
    return {parsed[0]: parsed[1] for _, parsed in parse_lines(text) if parsed}


def hand_set(text: str, names: Iterable[str]) -> dict[str, str]:
    """The values of ``names`` the file sets by hand: lines without nutbridge's marker."""
    wanted = frozenset(names)
    found: dict[str, str] = {}
    for _, parsed in parse_lines(text):
        if parsed and parsed[0] in wanted:
            name, value, marked = parsed
            if marked:
                found.pop(name, None)
            else:
                found[name] = value
    return found


def hand_lines(text: str, generated: Iterable[str]) -> str:
    """The lines a person wrote, verbatim and in order: all but nutbridge's own, which are the variables in
    ``generated`` (``ALARM`` standing for the instruction line, as in ``merge``) and lines with the marker."""
    names = frozenset(generated)
    kept = []
    for line, parsed in parse_lines(text):
        ours = (parsed[0] in names or parsed[2]) if parsed else (ALARM in names and bool(ALARM_LINE.match(line)))
        if not ours:
            kept.append(line)
    return "".join(line + "\n" for line in kept)


def render(name: str, value: str | None, marked: bool) -> str:
    """One generated line; ``ALARM`` is NUT 2.8.4's instruction, bare when there is no alarm."""
    if name == ALARM:
        return ALARM if value is None else f"{ALARM} {format_value(value)}"
    return f"{name}: {format_value(value)}" + (f" {MARK}" if marked else "")


def merge(text: str, values: Mapping[str, str | None], marked: Iterable[str] = ()) -> str:
    """Update generated variables in place; keep every other line verbatim and in order; append new ones.

    A variable whose value is None is written as ``name: ""`` where the file has it, and not added
    where it doesn't. Names in ``marked`` are written with the marker. The ``ALARM`` key stands for the
    instruction line and is always written. A CRLF line stays CRLF.
    """
    marks = frozenset(marked)
    out: list[str] = []
    seen: set[str] = set()
    for line, parsed in parse_lines(text):
        name = parsed[0] if parsed else (ALARM if ALARM in values and ALARM_LINE.match(line) else None)
        if name is None or name not in values:
            out.append(line)
            continue
        if name in seen and name == ALARM:
            continue  # one instruction line is enough
        seen.add(name)
        out.append(render(name, values[name], name in marks) + ("\r" if line.endswith("\r") else ""))
    out.extend(render(n, v, n in marks) for n, v in values.items() if n not in seen and (v is not None or n == ALARM))
    return "".join(line + "\n" for line in out)
