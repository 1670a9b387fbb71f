"""What a NUT driver publishes on its socket: its variables (value, flags, aux length, enums, ranges), its instant
commands and whether its data is stale; as the protocol lines that say what changed (``apply``), and as the full
dump that answers DUMPALL (``dump``). Pure: lines in, lines out, no I/O.

The order is dstate.c's (drivers/dstate.c ``sock_arg``/``st_tree_dump_conn``, NUT 2.8.0 to 2.8.5): DATASTALE first
when stale; each variable in the state tree's order (names compared without case) as SETINFO, then its ADDENUMs,
ADDRANGEs, SETAUX and SETFLAGS; the ADDCMDs, names sorted without case; DATAOK when not stale; DUMPDONE.
A fresh driver is stale until its first good poll, as NUT's drivers are (dstate.c starts with ``stale = 1``).
Values are always quoted and escaped (pconf_encode), the dump's form: upsd parses both the same way.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from nutbridge.nut.sock_wire import MAX_VALUE, quote


class Flag(enum.Flag):
    """A variable's flags as SETFLAGS names them (ST_FLAG_*)."""

    NONE = 0
    RW = enum.auto()
    STRING = enum.auto()
    NUMBER = enum.auto()


@dataclass(frozen=True, slots=True)
class Meta:
    """How upsd may let clients change a variable: flags, the longest string (aux, for STRING), allowed values."""

    flags: Flag = Flag.NONE
    aux: int = 0
    enums: tuple[str, ...] = ()
    ranges: tuple[tuple[int, int], ...] = ()

    def lines(self, name: str) -> list[str]:
        """This metadata as dstate.c sends it after a variable's SETINFO."""
        out = [f"ADDENUM {name} {quote(value)}" for value in self.enums]
        out += [f"ADDRANGE {name} {low} {high}" for low, high in self.ranges]
        if self.aux:
            out.append(f"SETAUX {name} {self.aux}")
        if self.flags:
            named = [f"{flag.name}" for flag in (Flag.RW, Flag.STRING, Flag.NUMBER) if flag in self.flags]
            out.append(" ".join(["SETFLAGS", name, *named]))
        return out


def writable(value: str) -> Meta:
    """The metadata of a variable clients may set: a number if its value is one, else a string of up to
    MAX_VALUE characters (upsd refuses a STRING without an aux length)."""
    try:
        float(value)
    except ValueError:
        return Meta(Flag.RW | Flag.STRING, aux=MAX_VALUE)
    return Meta(Flag.RW | Flag.NUMBER)


def _key(name: str) -> str:
    return name.lower()  # strcasecmp's order


class DriverState:
    """The variables, commands and staleness a driver publishes.

    ``static`` variables are set once and never changed or deleted by ``apply``; ``commands`` are listed by ADDCMD;
    a ``settable`` variable gets RW flags (``writable``) when it first appears; ``meta`` gives others explicitly.
    """

    def __init__(
        self,
        *,
        static: Mapping[str, str] = {},
        commands: Iterable[str] = (),
        settable: Iterable[str] = (),
        meta: Mapping[str, Meta] = {},
    ) -> None:
        self.values: dict[str, str] = {}
        self.meta: dict[str, Meta] = {}
        self.commands = sorted(set(commands), key=_key)
        self.settable = frozenset(settable)
        self.explicit = dict(meta)
        self.stale = True
        self.static: frozenset[str] = frozenset()
        self.apply(static)
        self.static = frozenset(static)  # from now on a poll can neither change nor delete them

    def _meta_for(self, name: str, value: str) -> Meta | None:
        if name in self.explicit:
            return self.explicit[name]
        return writable(value) if name in self.settable else None

    def apply(self, variables: Mapping[str, str | None]) -> list[str]:
        """Take a poll's variables (None = delete); the lines for what changed: SETINFO for a new or changed
        value (and a new variable's metadata), DELINFO for one removed."""
        out: list[str] = []
        for name, value in variables.items():
            if name in self.static:
                continue
            if value is None:
                if name in self.values:
                    del self.values[name]
                    self.meta.pop(name, None)
                    out.append(f"DELINFO {name}")
                continue
            kept = value[:MAX_VALUE]  # dstate_setinfo's buffer
            if self.values.get(name) == kept:
                continue
            new = name not in self.values
            self.values[name] = kept
            out.append(f"SETINFO {name} {quote(kept)}")
            if new and (meta := self._meta_for(name, kept)) is not None:
                self.meta[name] = meta
                out += meta.lines(name)
        return out

    def own(self, name: str, value: str) -> list[str]:
        """Set a variable the driver keeps about itself (such as driver.state), which no poll may change: its
        SETINFO if the value changed."""
        if name not in self.static:  # once: this runs at every poll
            self.static = self.static | {name}
        if self.values.get(name) == value:
            return []
        self.values[name] = value
        return [f"SETINFO {name} {quote(value)}"]

    def mark_ok(self) -> list[str]:
        """The data is good again: DATAOK if it was stale."""
        if not self.stale:
            return []
        self.stale = False
        return ["DATAOK"]

    def mark_stale(self) -> list[str]:
        """The data can no longer be trusted (values kept): DATASTALE once."""
        if self.stale:
            return []
        self.stale = True
        return ["DATASTALE"]

    def variable(self, name: str) -> list[str]:
        """One variable's lines as the dump gives them (SETINFO and its metadata), or none if unknown."""
        if name not in self.values:
            return []
        meta = self.meta.get(name)
        return [f"SETINFO {name} {quote(self.values[name])}", *(meta.lines(name) if meta else ())]

    def dump(self, only: str | None = None) -> list[str]:
        """The answer to DUMPALL (or, with ``only``, to DUMPVALUE ``only``): the whole state, DUMPDONE last."""
        out = ["DATASTALE"] if self.stale else []
        if only is not None:
            out += self.variable(only)
        else:
            for name in sorted(self.values, key=_key):
                out += self.variable(name)
            out += [f"ADDCMD {command}" for command in self.commands]
        out += [] if self.stale else ["DATAOK"]
        out.append("DUMPDONE")
        return out


class CmdStatus(enum.IntEnum):
    """What an INSTCMD handler answers (drivers/upshandler.h STAT_INSTCMD_*), sent back as ``TRACKING id n``."""

    HANDLED = 0
    UNKNOWN = 1  # upsd's tracking says ERR-UNKNOWN: also a command the driver does not have
    INVALID = 2
    FAILED = 3


class SetStatus(enum.IntEnum):
    """What a SET handler answers (drivers/upshandler.h STAT_SET_*)."""

    HANDLED = 0
    UNKNOWN = 1
    INVALID = 2  # not writable
    FAILED = 3
