"""Network namespaces for the benches: hosts on a bridge, each with its own /etc/hosts and its own /home/pi.

Every namespace this module makes is named ``PREFIX-…``, so a run can remove what an earlier run left behind
(``cleanup``): its processes, its namespaces (their veth ends go with them) and its ``/etc/netns/`` folders.
The bridge lives in a namespace of its own; no default route is ever added, so nothing leaves the namespaces.
Needs root and iproute2 (``ip``), and util-linux's ``unshare`` for :func:`Net.run`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "nbv1"
NETNS_ETC = Path("/etc/netns")
# Inside `ip netns exec` (a mount namespace of its own, /etc/hosts already bound to /etc/netns/NS/hosts):
# a private copy of the mounts, a tmpfs over /home and the node's folder at /home/pi, then the command.
HOME_SCRIPT = 'mount -t tmpfs nbv1-home /home && mkdir -p /home/pi && mount --bind "$1" /home/pi && shift && exec "$@"'


def ip_cmd(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def spaces(prefix: str = PREFIX) -> list[str]:
    """The namespaces named ``prefix-…`` that exist now."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(f"{prefix}-")]


def kill_inside(space: str) -> None:
    """Stop every process in namespace ``space`` (ours: the namespace is), TERM then KILL, by id."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        out = subprocess.run(["ip", "netns", "pids", space], capture_output=True, text=True, check=False).stdout
        pids = [int(p) for p in out.split() if p.isdigit()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[-1].startswith("Z")


def cleanup(prefix: str = PREFIX) -> list[str]:
    """Remove what a run with ``prefix`` left: processes, namespaces, /etc/netns folders. Returns the names."""
    removed = spaces(prefix)
    for space in removed:
        kill_inside(space)
        subprocess.run(["ip", "netns", "del", space], check=False, capture_output=True)
    if NETNS_ETC.is_dir():
        for folder in NETNS_ETC.glob(f"{prefix}-*"):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    return removed


@dataclass
class Net:
    """A bridge in namespace ``PREFIX-sw`` and hosts on it, each ``name`` → namespace ``PREFIX-name``."""

    prefix: str = PREFIX
    hosts: Mapping[str, str] = field(default_factory=dict)  # /etc/hosts lines every host gets: name → address
    made: list[str] = field(default_factory=list)

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    def __enter__(self) -> Net:
        ip_cmd("netns", "add", self.switch)
        self.made.append(self.switch)
        ip_cmd("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip_cmd("-n", self.switch, "link", "set", "br0", "up")
        ip_cmd("-n", self.switch, "link", "set", "lo", "up")
        self._etc(self.switch)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for space in reversed(self.made):
            kill_inside(space)
            subprocess.run(["ip", "netns", "del", space], check=False, capture_output=True)
            shutil.rmtree(NETNS_ETC / space, ignore_errors=True)
        self.made.clear()

    def switch_address(self, ip: str) -> None:
        """Give the bridge itself an address (for a service every host reaches, run with ``run(self.switch…)``)."""
        ip_cmd("-n", self.switch, "addr", "add", f"{ip}/24", "dev", "br0")

    def add_host(self, name: str, ip: str, mac: str, ifname: str = "wlan0") -> str:
        """Namespace ``PREFIX-name``: ``ifname`` at ``ip``/24 with hardware address ``mac`` on the bridge, lo up."""
        space = f"{self.prefix}-{name}"
        ip_cmd("netns", "add", space)
        self.made.append(space)
        port = f"{self.prefix}{name}"[:15]
        ip_cmd("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", space)
        ip_cmd("-n", self.switch, "link", "set", port, "master", "br0", "up")
        ip_cmd("-n", space, "link", "set", ifname, "address", mac)
        ip_cmd("-n", space, "addr", "add", f"{ip}/24", "dev", ifname)
        ip_cmd("-n", space, "link", "set", ifname, "up")
        ip_cmd("-n", space, "link", "set", "lo", "up")
        self._etc(space)
        return space

    def _etc(self, space: str) -> None:
        """/etc/netns/NS/hosts (bound over /etc/hosts by ``ip netns exec``) and an empty resolv.conf: names
        resolve only from this file; nothing is asked of a DNS server."""
        folder = NETNS_ETC / space
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1\tlocalhost", *(f"{addr}\t{host}" for host, addr in self.hosts.items())]
        (folder / "hosts").write_text("\n".join(lines) + "\n")
        (folder / "resolv.conf").write_text("")

    def command(self, space: str, argv: Sequence[str], home: Path | None = None) -> list[str]:
        """``argv`` run in ``space``; with ``home``, in a private mount namespace where ``home`` is /home/pi."""
        if home is None:
            return ["ip", "netns", "exec", space, *argv]
        return ["ip", "netns", "exec", space, "unshare", "--mount", "--propagation", "private",
                "sh", "-c", HOME_SCRIPT, "sh", str(home), *argv]  # fmt: skip

    def run(
        self,
        space: str,
        argv: Sequence[str],
        *,
        home: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` to its end in ``space`` (see :meth:`command`); its output as text."""
        return subprocess.run(
            self.command(space, argv, home),
            capture_output=True,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )

    @contextlib.contextmanager
    def background(
        self,
        space: str,
        argv: Sequence[str],
        log: Path,
        *,
        home: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> Iterator[subprocess.Popen[bytes]]:
        """``argv`` in ``space`` for the block's length (its output in ``log``); stopped with TERM, then KILL."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                self.command(space, argv, home),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        try:
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """TERM the process group ``proc`` leads, wait, then KILL what is left of it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def wait_port(space: str, ip: str, port: int, proc: subprocess.Popen[bytes], log: Path, *, seconds: float = 30) -> None:
    """Wait until something in ``space`` accepts connections at ``ip:port`` (``proc`` must stay alive)."""
    probe = f"import socket; socket.create_connection(({ip!r}, {port}), timeout=1).close()"
    deadline = time.monotonic() + seconds
    while True:
        done = subprocess.run(["ip", "netns", "exec", space, "python3", "-c", probe], capture_output=True, check=False)
        if done.returncode == 0:
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"nothing listens at {ip}:{port} in {space}: {tail}")
        time.sleep(0.1)
