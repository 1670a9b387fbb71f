"""Checked against the original: enphase-monitor (bash, v0.9.1) and nutbridge on enphase-monitor's own TEST
configuration, unchanged, compared port-file line by port-file line in every TEST state.

The original script, its ``test.conf`` and ``test-ref.dev`` are taken from a git mirror of sshambar/enphase-monitor
(``--git-dir``, its HEAD) into a temporary folder at run time; none of it is ever kept in this repository. Each
program gets its own folder, laid out as the original's README says: ``test.conf`` (made ``chmod 600``, as the
script refuses a world-readable one; its text unchanged: PORT_FILE=test.dev, STATE_DIR=., POLLFREQ=6) and
``test.dev`` copied from ``test-ref.dev``. Both run at once, in their folder:

    bash enphase-monitor -c test.conf                               (PATH starts with a curl that fails loudly)
    python -m nutbridge -c test.conf --nut-version 2.8.0            (the working tree's nutbridge)

Both loop online → nocomms → online2 → onbatt → lowbatt → online, one state per poll, 6 s (5 s in nocomms and
on battery) apart. The folders are read every 50 ms; a state's port file is the last one seen before the next
state began (the original's ``DEBUG: TEST_CYCLE now X`` line, nutbridge's ``TEST mode: X`` log line by its time
stamp), ``test.dev-nocomms`` in nocomms. Per state, the ``key: value`` lines (nutbridge's `` # nutbridge``
markers stripped), comments and blank lines are compared as sets: bash writes an unordered map.

Differences README intends are labelled so (nutbridge keeps hand-set battery.*/input.*/output.* lines the original
drops; nutbridge may add CHRG/DISCHRG to ups.status; battery.current is + while charging, the original's the
storage meter's sign; with the meters off it writes no zeros); any other is a nutbridge bug: exit status 1. Exit
status 2: something the bench needs is missing (it says what to install).

``--variants`` runs the comparison again for each site in test-fixtures/envoy/ (single phase, three phase): its
live data and meter reports replace test.conf's TEST_LIVE and TEST_REPORTS in both copies (the charge becomes
TEST mode's ``@BATT_SOC@``, so the loop's states still show), so every meter line of every fixture is compared.

Usage: .venv/bin/python -m bench.enphase_compare [--git-dir DIR] [--meters-off] [--variants] [--timeout 75] [--keep]
"""

from __future__ import annotations

import argparse
import calendar
import collections
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

MIRROR = Path("/work/.mirror/sshambar+enphase-monitor/repo")
REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "test-fixtures" / "envoy"
VARIANTS = ("single-phase", "3phase")  # live-<v>.json and reports-<v>.json; live-no-batteries has no charge to loop
PORT_FILE = "test.dev"
HIDDEN = PORT_FILE + "-nocomms"
MARKER = " # nutbridge"
STATES = ("online", "nocomms", "online2", "onbatt", "lowbatt", "online")  # the loop, and its first state again
LABELS = ("online", "nocomms", "online2", "onbatt", "lowbatt", "online (2nd loop)")
EXPECTED = {"online": "OL", "online2": "OL", "onbatt": "OB", "lowbatt": "OB LB"}  # ups.status; nocomms: hidden
CHARGING = ("CHRG", "DISCHRG")  # status words nutbridge may add
SAMPLE = 0.05  # seconds between two looks at each folder
ORIGINAL_NEEDS = ("bash", "jq", "head", "stat", "base64", "date", "chmod", "uname", "git")
INSTALL = "apt-get install jq coreutils bash git"
ORIGINAL_STATE = re.compile(r"^DEBUG:\s+TEST_CYCLE now (\w+)$")
NUTBRIDGE_STATE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO TEST mode: (\w+)$")
CURL_STUB = """#!/bin/sh
# enphase-monitor must never run curl in TEST mode: this one says so and fails
echo "$*" >> "{called}"
echo "bench curl stub: curl called in TEST mode: $*" >&2
exit 97
"""

# Why a line may differ on purpose (README); the empty string means it must not.
KEPT_BY_HAND = "intended: nutbridge keeps a hand-set battery.*/input.*/output.* line (the original drops it)"
CHRG = "intended: nutbridge adds CHRG/DISCHRG to ups.status"
SIGN = "intended: nutbridge's battery.current is + while charging (the original keeps the storage meter's sign)"
CAPACITY = ("intended: battery.capacity is secctrl's Max_energy (the original: live data's enc_agg_energy, the energy "
            "stored now), and battery.runtime and ups.load follow it")  # fmt: skip
NO_ZEROS = "intended: meters off, the original writes zeros (runtime 172800), nutbridge writes nothing"
LATE_NOCOMMS = 1.0  # seconds: a rename later than this leaves dummy-ups (a look every ~2 s) little time to see it
METER_KEYS = re.compile(r"^(input|output)\.(L\d\.|L\d-N\.)?(realpower|power|voltage|powerfactor|frequency|current)$")


@dataclasses.dataclass(frozen=True, slots=True)
class Look:
    """What one look at a folder found: the port file's text, the hidden file's (None: absent)."""

    at: float  # wall clock, when the look began
    shown: str | None
    hidden: str | None


@dataclasses.dataclass(slots=True)
class Run:
    """One program running in its folder: its state changes and every distinct look at its folder."""

    name: str
    folder: Path
    proc: subprocess.Popen[str]
    states: list[tuple[str, float]] = dataclasses.field(default_factory=list)  # (state, wall clock it began)
    looks: list[Look] = dataclasses.field(default_factory=list)
    empty_reads: int = 0  # the port file seen empty (mid-write)
    stderr: list[str] = dataclasses.field(default_factory=list)
    stdout: list[str] = dataclasses.field(default_factory=list)


def git_show(git_dir: Path, path: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", "show", f"HEAD:{path}"], check=True, capture_output=True, text=True
    ).stdout


def prepare(folder: Path, conf: str, seed: str) -> Path:
    folder.mkdir(mode=0o755)
    (folder / "test.conf").write_text(conf)
    (folder / "test.conf").chmod(0o600)  # "Ensure <config> ... is not world readable!"
    (folder / PORT_FILE).write_text(seed)  # "copy test-ref.dev to test.dev"
    return folder / "test.conf"


def read_or_none(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def watch(runs: list[Run], stop: threading.Event) -> None:
    """Look at each folder every SAMPLE seconds; keep each look that differs from the one before."""
    while not stop.is_set():
        for run in runs:
            at = time.time()
            look = Look(at, read_or_none(run.folder / PORT_FILE), read_or_none(run.folder / HIDDEN))
            run.empty_reads += look.shown == ""
            last = run.looks[-1] if run.looks else None
            if last is None or (last.shown, last.hidden) != (look.shown, look.hidden):
                run.looks.append(look)
        stop.wait(SAMPLE)


def read_stderr(run: Run, pattern: re.Pattern[str]) -> None:
    """Collect stderr; each state line marks when the program began that state (its stamp, if it has one)."""
    assert run.proc.stderr is not None
    for raw in run.proc.stderr:
        received = time.time()
        line = raw.rstrip("\n")
        run.stderr.append(line)
        found = pattern.match(line)
        if found is None:
            continue
        if found.lastindex == 3:  # nutbridge, TZ=UTC: "2026-12-02 04:38:02,276 INFO TEST mode: online"
            stamp = calendar.timegm(time.strptime(found.group(1), "%Y-%m-%d %H:%M:%S")) + int(found.group(2)) / 1000
            run.states.append((found.group(3), stamp))
        else:
            run.states.append((found.group(1), received))


def read_stdout(run: Run) -> None:
    assert run.proc.stdout is not None
    run.stdout.extend(line.rstrip("\n") for line in run.proc.stdout)


def stop_run(run: Run) -> None:
    """End the program (and, for the shell, its sleep) by its own process group."""
    if run.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.proc.pid, signal.SIGTERM)
        try:
            run.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait()


@dataclasses.dataclass(frozen=True, slots=True)
class Capture:
    """A state's port file as the program left it: the look, and how long after the state began it appeared."""

    look: Look | None
    appeared: float | None  # None: the same as before the state began (or never seen)


def captures(run: Run) -> list[Capture]:
    """For each state of STATES that the program finished, the last look taken before its next state began."""
    result = []
    for k in range(len(STATES)):
        if k + 1 >= len(run.states):
            break
        start, end = run.states[k][1], run.states[k + 1][1]
        before = [look for look in run.looks if look.at < end]
        look = before[-1] if before else None
        appeared = None
        if look is not None and look.at >= start:
            same = [x for x in before if (x.shown, x.hidden) == (look.shown, look.hidden) and x.at >= start]
            appeared = same[0].at - start
        result.append(Capture(look, appeared))
    return result


def file_lines(text: str | None, *, strip_marker: bool) -> list[str]:
    lines = [] if text is None else text.splitlines()
    return [line.removesuffix(MARKER) if strip_marker else line for line in lines]


def status_of(lines: list[str]) -> str | None:
    return next((line.partition(":")[2].strip() for line in lines if line.startswith("ups.status:")), None)


def shape_problem(state: str, look: Look | None) -> str | None:
    """What is wrong with a capture for ``state`` (the file to look at, its status), or None."""
    if look is None:
        return "no port file seen"
    if state == "nocomms":
        return None if look.shown is None and look.hidden is not None else f"{PORT_FILE} not renamed to {HIDDEN}"
    if look.shown is None:
        return f"{PORT_FILE} missing"
    status = status_of(look.shown.splitlines())
    words = [w for w in (status or "").split() if w not in CHARGING]
    return None if " ".join(words) == EXPECTED[state] else f"ups.status {status!r}, expected {EXPECTED[state]!r}"


def why(line: str, only_in: str, own: list[str], other: list[str], seed: list[str], *, meters_off: bool) -> str:
    """The README's reason for a line found in one program's file (``own``) only; "" if there is none (a bug)."""
    key, _, value = line.partition(":")
    value = value.strip()
    theirs = {o.partition(":")[0]: o.partition(":")[2].strip() for o in other}
    other_current = theirs.get(key, "")
    if key == "battery.current" and other_current != value and other_current.lstrip("-") == value.lstrip("-"):
        return SIGN
    mine = {o.partition(":")[0]: o.partition(":")[2].strip() for o in own}
    capacities = {mine.get("battery.capacity"), theirs.get("battery.capacity")}
    if key in ("battery.capacity", "battery.runtime", "ups.load") and len(capacities) > 1:
        return CAPACITY
    if only_in == "nutbridge":
        if line in seed and key.startswith(("battery", "input", "output")):
            return KEPT_BY_HAND
        if key == "ups.status":
            original_status = status_of(other)
            words = [w for w in value.split() if w not in CHARGING]
            if original_status is not None and " ".join(words) == original_status and words != value.split():
                return CHRG
    else:
        if key == "ups.status":
            nutbridge_status = status_of(other)
            plain = None if nutbridge_status is None else [w for w in nutbridge_status.split() if w not in CHARGING]
            if plain is not None and " ".join(plain) == value:
                return CHRG
        zero = value.strip("0.-") == ""
        if meters_off and (
            (METER_KEYS.match(key) and zero)
            or (key == "battery.current" and zero)
            or (key == "ups.load" and zero)
            or line == "battery.runtime: 172800"
        ):
            return NO_ZEROS
    return ""


@dataclasses.dataclass(slots=True)
class Row:
    state: str
    same: int = 0
    only_original: int = 0
    only_nutbridge: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)
    unexpected: int = 0


def compare(state: str, original: Look | None, nutbridge: Look | None, seed: list[str], meters_off: bool) -> Row:
    row = Row(state)
    for name, look in (("original", original), ("nutbridge", nutbridge)):
        problem = shape_problem(state.split(maxsplit=1)[0], look)
        if problem:
            row.notes.append(f"UNEXPECTED ({name}): {problem}")
            row.unexpected += name == "nutbridge"
    text = {n: (None if lk is None else (lk.shown if lk.shown is not None else lk.hidden))
            for n, lk in (("original", original), ("nutbridge", nutbridge))}  # fmt: skip
    orig_lines = file_lines(text["original"], strip_marker=False)
    nb_lines = file_lines(text["nutbridge"], strip_marker=True)
    a, b = collections.Counter(orig_lines), collections.Counter(nb_lines)
    row.same = sum((a & b).values())
    for line in sorted((a - b).elements()):
        row.only_original += 1
        reason = why(line, "original", orig_lines, nb_lines, seed, meters_off=meters_off)
        row.unexpected += not reason
        row.notes.append(f"only in the original: {line!r}: {reason or 'UNEXPECTED (a nutbridge bug)'}")
    for line in sorted((b - a).elements()):
        row.only_nutbridge += 1
        reason = why(line, "nutbridge", nb_lines, orig_lines, seed, meters_off=meters_off)
        row.unexpected += not reason
        row.notes.append(f"only in nutbridge: {line!r}: {reason or 'UNEXPECTED (a nutbridge bug)'}")
    hand = [line for line in seed if line.startswith("#") or (":" in line and not line.startswith("ups.status"))]
    for name, lines in (("original", orig_lines), ("nutbridge", nb_lines)):
        lost = [line for line in hand if line not in lines]
        if lost:
            row.notes.append(f"{name} lost seed lines: {lost}")
    comments = [line for line in nb_lines if line.startswith("#") or not line.strip()]
    if comments != [line for line in orig_lines if line.startswith("#") or not line.strip()]:
        row.notes.append("comment or blank lines differ")
    return row


def moved(look: Look | None, seed: list[str], strip_marker: bool) -> list[str]:
    """The seed's lines that a program wrote after its first generated line (re-emitted, not kept in place)."""
    lines = file_lines(None if look is None else look.shown, strip_marker=strip_marker)
    first_generated = next((i for i, line in enumerate(lines) if line not in seed), len(lines))
    return [line for line in seed if line in lines and lines.index(line) > first_generated]


def check_tools() -> list[str]:
    missing = [exe for exe in ORIGINAL_NEEDS if shutil.which(exe) is None]
    bash = shutil.which("bash")
    if bash:
        version = [bash, "-c", "echo ${BASH_VERSINFO[0]}"]
        major = subprocess.run(version, check=False, capture_output=True, text=True).stdout
        if not major.strip().isdigit() or int(major) < 4:
            missing.append("bash >= 4")
    return missing


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="enphase-compare-"))
    try:
        yield folder
    finally:
        if keep:
            print(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def start(name: str, args: list[str], folder: Path, env: dict[str, str]) -> Run:
    proc = subprocess.Popen(
        args,
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: stopped with its children, and only them
    )
    return Run(name, folder, proc)


def show_commands(base: Path, runs: list[tuple[str, list[str]]]) -> None:
    for name, args in runs:
        shown = " ".join(a.replace(str(base), "$TMP") for a in args)
        print(f"  {name:9} (in $TMP/{name}): {shown}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--git-dir", type=Path, default=MIRROR, help="git mirror of sshambar/enphase-monitor")
    p.add_argument("--meters-off", action="store_true", help="uncomment test.conf's #DISABLE_METERS=1 in both copies")
    p.add_argument("--variants", action="store_true", help="also each site of test-fixtures/envoy/ (3-phase …)")
    p.add_argument("--timeout", type=float, default=75.0, help="seconds both may take for the loop (default 75)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args()

    missing = check_tools()
    if missing:
        print(f"the original needs: {', '.join(missing)}; install with: {INSTALL}", file=sys.stderr)
        return 2
    if not (args.git_dir / "HEAD").exists():
        print(f"{args.git_dir}: no git mirror of sshambar/enphase-monitor (--git-dir)", file=sys.stderr)
        return 2
    conf, seed = git_show(args.git_dir, "test.conf"), git_show(args.git_dir, "test-ref.dev")
    script = git_show(args.git_dir, "enphase-monitor")
    if args.meters_off:
        conf = re.sub(r"^#DISABLE_METERS=1$", "DISABLE_METERS=1", conf, flags=re.MULTILINE)
    meters_off = bool(re.search(r"^DISABLE_METERS=\S", conf, flags=re.MULTILINE))

    status = run_both(args, conf, seed, script, meters_off)
    for variant in VARIANTS if args.variants else ():
        print(f"\n=== test-fixtures/envoy/live-{variant}.json and reports-{variant}.json as TEST_LIVE, TEST_REPORTS")
        site = f" but for TEST_LIVE and TEST_REPORTS ({variant})"
        status = max(status, run_both(args, with_site(conf, variant), seed, script, meters_off, site=site))
    return status


def with_site(conf: str, variant: str) -> str:
    """test.conf with a fixture site's live data and reports; its charge becomes TEST mode's @BATT_SOC@."""
    live = json.dumps(json.loads((FIXTURES / f"live-{variant}.json").read_text()), separators=(",", ":"))
    live = re.sub(r'"soc":\d+(\.\d+)?', '"soc":@BATT_SOC@', live)
    reports = json.dumps(json.loads((FIXTURES / f"reports-{variant}.json").read_text()), separators=(",", ":"))
    for key, text in (("TEST_LIVE", live), ("TEST_REPORTS", reports)):
        found = list(re.finditer(rf"^{key}='[^']*'", conf, flags=re.MULTILINE))
        if len(found) != 1:
            raise SystemExit(f"test.conf: no single-quoted {key}= to replace")
        conf = f"{conf[: found[0].start()]}{key}='{text}'{conf[found[0].end() :]}"  # as text: no regex escapes
    return conf


def run_both(args: argparse.Namespace, conf: str, seed: str, script: str, meters_off: bool, *, site: str = "") -> int:
    """Both programs at once, each in its folder, until both began the loop's first state again, plus one."""
    version = re.search(r"Enphase Monitor for NUT dummy-ups (v[\d.]+)", script)
    with workspace(args.keep) as base:
        (base / "bin").mkdir()
        stub = base / "bin" / "curl"
        stub.write_text(CURL_STUB.format(called=base / "curl-called"))
        stub.chmod(0o755)
        (base / "enphase-monitor").write_text(script)
        (base / "enphase-monitor").chmod(0o755)
        (base / "etc").mkdir()  # an empty NUT_CONFPATH: nutbridge finds no ups.conf of this host
        env = {k: v for k, v in os.environ.items() if k not in ("JOURNAL_STREAM", "CONFIG_FILE", "UPS", "DEBUG")}
        env |= {"PATH": f"{base / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}", "LC_ALL": "C.UTF-8", "TZ": "UTC"}
        nb_env = env | {"PYTHONPATH": str(REPO), "NUT_CONFPATH": str(base / "etc")}
        commands = [
            ("original", ["bash", str(base / "enphase-monitor"), "-c", "test.conf"]),
            ("nutbridge", [sys.executable, "-m", "nutbridge", "-c", "test.conf", "--nut-version", "2.8.0"]),
        ]
        print(f"enphase-monitor {version.group(1) if version else '?'} from {args.git_dir} (HEAD), "
              f"test.conf {'with DISABLE_METERS=1' if meters_off else 'unchanged'}{site}; $TMP = {base}")  # fmt: skip
        show_commands(base, commands)
        folders = {name: prepare(base / name, conf, seed).parent for name, _ in commands}
        runs = [start(name, cmd, folders[name], env if name == "original" else nb_env) for name, cmd in commands]
        stop = threading.Event()
        threads = [threading.Thread(target=watch, args=(runs, stop), daemon=True)]
        threads += [threading.Thread(target=read_stderr, args=(r, pat), daemon=True)
                    for r, pat in zip(runs, (ORIGINAL_STATE, NUTBRIDGE_STATE), strict=True)]  # fmt: skip
        threads += [threading.Thread(target=read_stdout, args=(r,), daemon=True) for r in runs]
        for thread in threads:
            thread.start()
        began = time.monotonic()
        try:
            while time.monotonic() - began < args.timeout:
                if all(len(r.states) > len(STATES) or r.proc.poll() is not None for r in runs):
                    break
                time.sleep(0.1)
        finally:
            for run in runs:
                stop_run(run)
            stop.set()
            for thread in threads:
                thread.join(timeout=5)
        took = time.monotonic() - began
        curl_called = read_or_none(base / "curl-called")
        return report(runs, seed.splitlines(), meters_off, took, curl_called)


def report(runs: list[Run], seed: list[str], meters_off: bool, took: float, curl_called: str | None) -> int:
    original, nutbridge = runs
    print(f"ran {took:.1f} s; states seen: original {[s for s, _ in original.states]}, "
          f"nutbridge {[s for s, _ in nutbridge.states]}")  # fmt: skip
    problems = []
    if curl_called is not None:
        problems.append(f"the original called curl: {curl_called.strip()}")
    for run in runs:
        seen = [s for s, _ in run.states][: len(STATES)]
        if seen != list(STATES[: len(seen)]) or len(run.states) <= len(STATES):
            problems.append(f"{run.name} did not go through the loop {STATES} and on (exit {run.proc.returncode})")
    caps = {run.name: captures(run) for run in runs}
    rows = []
    for k, label in enumerate(LABELS):
        if k >= len(caps["original"]) or k >= len(caps["nutbridge"]):
            break
        rows.append(compare(label, caps["original"][k].look, caps["nutbridge"][k].look, seed, meters_off))
    print()
    print(f"{'state':18} {'lines identical':>15} {'only in original':>17} {'only in nutbridge':>18}  verdict")
    for row in rows:
        verdict = "same" if not row.notes else ("UNEXPECTED" if row.unexpected else "intended differences only")
        print(f"{row.state:18} {row.same:>15} {row.only_original:>17} {row.only_nutbridge:>18}  {verdict}")
    where: dict[str, list[str]] = {}  # each note once, with the states it was seen in
    for row in rows:
        for note in row.notes:
            where.setdefault(note, []).append(row.state)
    for note, states in where.items():
        print(f"  {'every state' if len(states) == len(rows) else ', '.join(states)}: {note}")
    if caps["original"] and caps["nutbridge"]:
        print(f"  order (not compared): hand-written lines of test-ref.dev found after the first generated line, "
              f"in the first state: original {moved(caps['original'][0].look, seed, False) or 'none'}; "
              f"nutbridge {moved(caps['nutbridge'][0].look, seed, True) or 'none'}")  # fmt: skip
    print()
    print("when each state's file appeared, seconds after the state began (nocomms: the rename); '-': unchanged")
    print(f"{'state':18} {'original':>9} {'nutbridge':>10}")
    for k, row in enumerate(rows):
        cells = [caps[name][k].appeared for name in ("original", "nutbridge")]
        shown = [f"{c:.2f}" if c is not None else "-" for c in cells]
        print(f"{row.state:18} {shown[0]:>9} {shown[1]:>10}")
    late = [caps["nutbridge"][k] for k, label in enumerate(LABELS[: len(rows)]) if label == "nocomms"]
    if late and late[0].appeared is not None and late[0].appeared > LATE_NOCOMMS:
        rest = nutbridge.states[2][1] - nutbridge.states[1][1] - late[0].appeared
        print(f"NOTE (timing, not a line difference): nutbridge renamed the file {late[0].appeared:.1f} s into "
              f"nocomms (its retries within the poll), so {HIDDEN} stood {rest:.1f} s before online2 restored "
              f"it; the original renames at once and leaves it for POLLFREQALERT")  # fmt: skip
    print(f"port file seen empty (mid-write) by the 50 ms looks: original {original.empty_reads}, "
          f"nutbridge {nutbridge.empty_reads}")  # fmt: skip
    warnings = [line for line in nutbridge.stderr if " WARNING " in line or " ERROR " in line]
    print("nutbridge warnings and errors:" if warnings else "nutbridge warnings and errors: none")
    for line in warnings:
        print(f"  {line}")
    unexpected = sum(row.unexpected for row in rows)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if problems or unexpected or len(rows) < len(LABELS):
        for run in runs:
            print(f"--- {run.name} stderr (last 15 lines)")
            print("\n".join(run.stderr[-15:]))
        print(f"FAIL: {unexpected} unexpected line difference(s), {len(problems)} problem(s)")
        return 1
    print(f"OK: {len(rows)} states, no unexpected difference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
