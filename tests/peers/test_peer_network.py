"""A real solar network: nutbridge nodes, each with its own simulator and sun, each in its own network
namespace on its own address, joined by a bridge in a namespace of its own (nothing touches the machine's
network). The test makes the namespaces and removes them; it needs root and iproute2.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need

KEY = "a network key for the test"
SUBNET = "10.77.0"
PORT = 8080
WAIT = 60.0  # seconds any one expectation may take before the test gives up


@dataclass
class Net:
    """The namespaces of one test run."""

    prefix: str = field(default_factory=lambda: f"nbt{secrets.token_hex(2)}")
    spaces: list[str] = field(default_factory=list)

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    def add_host(self, name: str, ip: str) -> str:
        """A namespace with ``eth0`` at ``ip``/24 on the bridge, and loopback up (the simulator listens there)."""
        space = f"{self.prefix}-{name}"
        ip_cmd("netns", "add", space)
        self.spaces.append(space)
        port = f"{self.prefix}{name}"[:15]
        ip_cmd("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", space)
        ip_cmd("-n", self.switch, "link", "set", port, "master", "br0", "up")
        ip_cmd("-n", space, "addr", "add", f"{ip}/24", "dev", "eth0")
        ip_cmd("-n", space, "link", "set", "eth0", "up")
        ip_cmd("-n", space, "link", "set", "lo", "up")
        return space


def ip_cmd(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def net() -> Iterator[Net]:
    need(shutil.which("ip") is not None, "iproute2's ip command makes the test's network namespaces")
    need(os.geteuid() == 0, "network namespaces need root")
    made = Net()
    ip_cmd("netns", "add", made.switch)
    made.spaces.append(made.switch)
    try:
        ip_cmd("-n", made.switch, "link", "add", "br0", "type", "bridge")
        ip_cmd("-n", made.switch, "link", "set", "br0", "up")
        yield made
    finally:
        for space in made.spaces:  # deleting a namespace deletes its veth ends too
            subprocess.run(["ip", "netns", "del", space], check=False, capture_output=True)


@dataclass
class Node:
    """One nutbridge process in its namespace."""

    name: str
    ip: str
    space: str
    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def devices_file(self) -> Path:
        return self.folder / "data" / "deviceList.json"

    def known(self) -> set[str]:
        """The names in this node's device list (the file, as a v1 tool reads it)."""
        try:
            return {entry["name"] for entry in json.loads(self.devices_file.read_text())}
        except (OSError, ValueError):
            return set()

    def get(self, path: str, key: str = "") -> Any:
        """GET a JSON route of this node from inside its own namespace (with the network key, if given)."""
        script = (
            "import sys, urllib.request as u; r = u.Request(sys.argv[1], headers={'X-Network-Key': sys.argv[2]}); "
            "sys.stdout.write(u.urlopen(r, timeout=5).read().decode())"
        )
        out = subprocess.run(
            ["ip", "netns", "exec", self.space, sys.executable, "-c", script, f"http://{self.ip}:{PORT}{path}", key],
            capture_output=True,
            timeout=20,
            check=True,
        )
        return json.loads(out.stdout)

    def command(self, line: str) -> None:
        """Type a command to this node's simulator."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        self.process.stdin.flush()

    def log(self) -> str:
        return (self.folder / "stderr.log").read_text(errors="replace")


@contextlib.contextmanager
def node_processes() -> Iterator[Callable[..., Node]]:
    """Start nodes with ``start(...)``; every one is stopped when the block ends."""
    started: list[Node] = []

    def start(net: Net, tmp: Path, name: str, number: int, *, sun: str, seeds: list[str], **peers: Any) -> Node:
        ip = f"{SUBNET}.{number}"
        space = net.add_host(name, ip)
        folder = tmp / name
        folder.mkdir()
        settings = {
            "announce": True,
            "announce_interval": 1,
            "election": True,
            "election_interval": 2,
            "election_freshness": 10,
            "public_ip": ip,
            "peer_expiry_days": 12 / 86400,  # a node silent for 12 s is forgotten
            "dns_update_command": ["/bin/sh", "-c", f'echo "$0 $1" >> {tmp}/dns.log', name, "{ip}"],
        } | peers
        config = folder / "node.toml"
        config.write_text(
            f'[source]\nkind = "simulator"\nstart = "{sun}"\n'
            f"[monitor]\npoll_interval = 1\n"
            f'[nut]\nport_file = "{folder}/ups.port"\nversion = "2.8.0"\n'
            f'[datalog]\nfolder = "{folder}/data"\n'  # rows held for the flush window count: the election sees them
            f'[api]\nlisten = "{ip}:{PORT}"\n'
            f'[node]\nname = "{name}"\npvWatts = 200\n'
            f"[peers]\nnetwork_key = {json.dumps(KEY)}\npeer_port = {PORT}\npeers = {json.dumps(seeds)}\n"
            f"allow_addresses = {json.dumps([f'{SUBNET}.0/24'])}\n"
            + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items() if v is not None)
        )
        config.chmod(0o600)
        (folder / "ups.port").touch()
        with (folder / "stderr.log").open("wb") as stderr:
            process = subprocess.Popen(
                ["ip", "netns", "exec", space, sys.executable, "-m", "nutbridge", "-c", str(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        node = Node(name, ip, space, folder, process)
        started.append(node)
        return node

    try:
        yield start
    finally:
        for node in started:
            if node.process.poll() is None:
                node.process.terminate()
        for node in started:
            if node.process.stdin:
                node.process.stdin.close()
            try:
                node.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()


def wait_for(what: str, check: Callable[[], bool], nodes: list[Node]) -> None:
    """Wait until ``check()`` holds; on timeout, fail with every node's log."""
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n.name}\n{n.log()[-3000:]}" for n in nodes)
            pytest.fail(f"not within {WAIT:g} s: {what}\n{logs}")
        for node in nodes:
            assert node.process.poll() is None, f"{node.name} exited:\n{node.log()[-3000:]}"
        time.sleep(0.3)


def dns_log(tmp: Path) -> list[str]:
    try:
        return (tmp / "dns.log").read_text().splitlines()
    except FileNotFoundError:
        return []


def three_nodes(start: Callable[..., Node], net: Net, tmp_path: Path) -> list[Node]:
    """node-a, node-b and node-c, each knowing one other at start, once every one knows every other. The sun
    stands differently at each: 08:00, 12:00 and 10:00 (scaled 22.5, 45 and 39 W)."""
    a = start(net, tmp_path, "node-a", 1, sun="08:00", seeds=[])
    b = start(net, tmp_path, "node-b", 2, sun="12:00", seeds=[a.ip])
    c = start(net, tmp_path, "node-c", 3, sun="10:00", seeds=[b.ip])
    nodes = [a, b, c]
    names = {n.name for n in nodes}
    wait_for("every node knows every other", lambda: all(n.known() == names for n in nodes), nodes)
    return nodes


def test_three_nodes_find_each_other_elect_one_and_hand_over(net: Net, tmp_path: Path) -> None:
    with node_processes() as start:
        nodes = three_nodes(start, net, tmp_path)
        a, b, c = nodes

        def holders() -> list[str | None]:
            return [n.get("/api/election")["holder"] for n in nodes]

        b_mac = b.get("/api/election")["mac"]
        wait_for("every node sees node-b as point of entry", lambda: holders() == [b_mac] * 3, nodes)
        states = [n.get("/api/election") for n in nodes]
        assert [s["point_of_entry"] for s in states] == [False, True, False]
        assert dns_log(tmp_path) == [f"node-b {b.ip}"]  # the DNS command ran once, with its address

        # Sunset at node-b: node-c, the next sunniest, takes over within two election rounds.
        b.command("night")
        wait_for("node-b reports no sun", lambda: b.get("/api/election")["scaled_wattage"] == 0, nodes)
        rounds_at_sunset = c.get("/api/election")["rounds"]
        c_mac = c.get("/api/election")["mac"]
        wait_for("node-c becomes point of entry", lambda: c.get("/api/election")["point_of_entry"], nodes)
        assert c.get("/api/election")["elected_round"] <= rounds_at_sunset + 2
        wait_for("every node sees node-c as point of entry", lambda: holders() == [c_mac] * 3, nodes)
        assert not b.get("/api/election")["point_of_entry"]
        assert dns_log(tmp_path) == [f"node-b {b.ip}", f"node-c {c.ip}"]
        poe_log = (c.folder / "data" / "poe.log").read_text().splitlines()
        assert len(poe_log) == 1 and poe_log[0].startswith("INFO:root:")  # the v1 form announcements carry
        wait_for(
            "node-c's announcements carry its point-of-entry event",
            lambda: any(e["name"] == "node-c" and len(e["log"]) == 1 for e in json.loads(a.devices_file.read_text())),
            nodes,
        )

        # node-a goes silent (powered off): the others forget it once peer_expiry_days have passed.
        a.process.kill()
        a.process.wait()
        alive = [b, c]
        wait_for("node-a expires", lambda: all(n.known() == {"node-b", "node-c"} for n in alive), alive)

        # A new node that knows only node-c learns every live node from that one answer. It announces once
        # (its interval is an hour) and does not say its address: it finds the one its peer reaches it at.
        d = start(net, tmp_path, "node-d", 4, sun="07:00", seeds=[c.ip], announce_interval=3600, election=False,
                  public_ip=None)  # fmt: skip
        wait_for("node-d knows every live node", lambda: d.known() == {"node-b", "node-c", "node-d"}, [*alive, d])
        assert "learned of node node-b" in d.log()
        wait_for("node-c stored node-d at its own address", lambda: "node-d" in c.known(), [*alive, d])
        entry = next(e for e in json.loads(c.devices_file.read_text()) if e["name"] == "node-d")
        assert entry["ip"] == d.ip
        assert dns_log(tmp_path) == [f"node-b {b.ip}", f"node-c {c.ip}"]  # no flapping all along


TRAP = """
import socket, sys, threading
log = open(sys.argv[1], "a")
def serve(family, host, port):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen()
    while True:
        conn, peer = s.accept()
        log.write(f"{host}:{port} from {peer}\\n")
        log.flush()
        conn.close()
for spec in sys.argv[2:]:
    host, port = spec.rsplit(":", 1)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    threading.Thread(target=serve, args=(family, host.strip("[]"), int(port)), daemon=True).start()
print("listening", flush=True)
threading.Event().wait()
"""


@contextlib.contextmanager
def background(command: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process for the block's length, its output in ``log``."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_hostile_node_with_the_key_breaks_no_honest_node(net: Net, tmp_path: Path) -> None:
    """Issue 16's findings 1-5 from a fourth node that holds the key (tests/peers/hostile_node.py), against three
    honest nodes: their lists stay readable and take a newcomer, the elections go on with an honest winner,
    nothing reaches a refused address, and each node says so once per kind of attack, not per request."""
    with node_processes() as start:
        nodes = three_nodes(start, net, tmp_path)
        a, b, _ = nodes
        names = {n.name for n in nodes}

        # Listeners where the refused addresses lead, in node-a's namespace: its loopback (8080 is free there:
        # the API listens on its eth0 address) and its own address at the ports of ssh and smtp.
        traps = tmp_path / "traps.log"
        traps.touch()
        listen = ["127.0.0.1:8080", "[::1]:8080", f"{a.ip}:22", f"{a.ip}:25"]
        trap_cmd = ["ip", "netns", "exec", a.space, sys.executable, "-c", TRAP, str(traps), *listen]
        evil_space = net.add_host("evil", f"{SUBNET}.66")
        rounds = tmp_path / "evil-rounds.jsonl"
        evil_cmd = ["ip", "netns", "exec", evil_space, sys.executable, "-m", "tests.peers.hostile_node", "--me",
                    f"{SUBNET}.66:{PORT}", "--key", KEY, "--rounds", str(rounds), "--every", "0.5",
                    *(arg for n in nodes for arg in ("--target", f"{n.ip}:{PORT}"))]  # fmt: skip
        with background(trap_cmd, tmp_path / "trap.out"), background(evil_cmd, tmp_path / "evil.out") as evil:

            def attacked(count: int) -> bool:
                assert evil.poll() is None, (tmp_path / "evil.out").read_text()
                return rounds.exists() and len(rounds.read_text().splitlines()) >= count

            wait_for("the hostile node has attacked", lambda: attacked(5), nodes)
            liars = {"liar", "v1 liar"}
            wait_for("its personas are known", lambda: all(n.known() == names | liars for n in nodes), nodes)
            before = [n.get("/api/election")["rounds"] for n in nodes]
            wait_for(
                "three more election rounds on every node",
                lambda: (
                    attacked(15)
                    and all(n.get("/api/election")["rounds"] >= r + 3 for n, r in zip(nodes, before, strict=True))
                ),
                nodes,
            )
            b_mac = b.get("/api/election")["mac"]
            assert [n.get("/api/election")["holder"] for n in nodes] == [b_mac] * 3  # the sunniest honest node
            for node in nodes:
                assert node.devices_file.stat().st_size <= 1024 * 1024
                listed = node.get("/api/devices", key=KEY)  # readable: a 200 with the list
                assert {d["name"] for d in listed} == names | liars, node.name
                assert all(float(d["time stamp"]) <= time.time() + 1 for d in listed)  # 1e300 counted as now

            # A new honest node joins through node-a while the attack goes on.
            d = start(net, tmp_path, "node-d", 4, sun="07:00", seeds=[a.ip], election=False)
            wait_for("every node knows node-d", lambda: all("node-d" in n.known() for n in nodes), [*nodes, d])
            wait_for("the attack went on meanwhile", lambda: attacked(20), [*nodes, d])

        assert traps.read_text() == "", "a request reached a refused address"
        for node in nodes:
            log = node.log()
            refused = [line for line in log.splitlines() if f"from {SUBNET}.66 refused" in line]
            assert 1 <= len(refused) <= 3, (node.name, refused)  # one a kind (entry, ip): not 20 rounds' worth
            for persona in liars:
                left_out = [line for line in log.splitlines() if f"node {persona} (" in line and "left out" in line]
                assert len(left_out) == 1, (node.name, left_out)
            assert "Traceback" not in log
