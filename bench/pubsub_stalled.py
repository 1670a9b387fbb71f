"""Pub/sub subscribers that never read: the hub's resident memory before, at the peak and after they closed.

Six raw TCP sockets complete the WebSocket handshake on ``/subscribe``, subscribe to one event and then never
call ``recv``; sixty ``POST /publish`` of 65,000 ``<`` follow, which Go's escaping (``\\u003c``) turns into
frames of 390 KB each. The subscribers of one event share its frames; with ``--own-events`` each subscribes to
an event of its own and every publish goes to each of them, so that no frame is shared. The hub runs in a
process of its own (this module with ``--serve``: the sidecar's app from ``make_app`` with the hub's routes, as
the daemon serves them), so its resident memory (VmRSS, from /proc) is the hub's alone; glibc's own view
(``mallinfo2``: bytes in use, and bytes free but kept by the allocator) is printed beside it, and once more
after a ``gc.collect()`` in the hub, which shows what only reference cycles still held. ``--queue-bytes 0``
(the default) leaves ``[pubsub] queue_bytes`` at its default, and out of a tree that predates it. Usage:
.venv/bin/python -m bench.pubsub_stalled [--subscribers 6] [--publishes 60] [--own-events] [--rounds 1]
[--queue-bytes N]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import ctypes
import ctypes.util
import dataclasses
import gc
import http.client
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nutbridge.config_sections import PubSubConfig
from nutbridge.server.app import Sidecar, make_app
from nutbridge.server.pubsub import CLOSE_TIMEOUT, PubSubHub
from nutbridge.server.pubsub_wire import frame, go_time

KEY = "bench-key-0123456789"
DATA = "<" * 65_000
FRAME = len(frame("big", DATA, go_time()).encode())  # what each subscriber is sent: 6 bytes for each "<"
SAMPLE = 0.05  # seconds between RSS samples while waiting


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def malloc_state() -> str:
    """glibc's heap: bytes in use (heap + mmapped) and bytes free but not given back; '-' without mallinfo2."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        return "- -"
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return f"{info.uordblks + info.hblkhd} {info.fordblks}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# The hub's process: commands on stdin, answers on stdout


async def serve(queue_bytes: int) -> None:
    logging.getLogger("nutbridge").setLevel(logging.ERROR)  # no line per closed subscriber
    config = PubSubConfig(api_key=KEY)
    if queue_bytes:  # a tree that predates the key has no such field
        config = dataclasses.replace(config, queue_bytes=queue_bytes)
    hub = PubSubHub(config)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    with tempfile.TemporaryDirectory() as folder:
        app = make_app(Path(folder))
        hub.routes(app)
        async with Sidecar(app, "127.0.0.1", 0) as sidecar:
            print(f"port {sidecar.port}", flush=True)
            while command := (await stdin.readline()).strip():
                if command == b"collect":  # what only the cycle collector frees
                    gc.collect()
                print(f"count {hub.subscribers} {hub.slow_closed} {malloc_state()}", flush=True)


# The bench's process: plain blocking sockets, since the hub is elsewhere


def stalled_subscriber(port: int, name: str, event: str) -> socket.socket:
    """A socket that completes the handshake, subscribes to ``event``, and is never read from again."""
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /subscribe HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nX-API-Key: {KEY}\r\n"
        f"X-API-Client-Name: {name}\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(1)  # byte by byte: nothing after the head is read
        if not chunk:
            raise RuntimeError("the hub closed the handshake")
        answer += chunk
    if not answer.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(answer.decode(errors="replace"))
    payload = json.dumps({"action": "subscribe", "event": event}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)  # a client's frames are masked
    return sock


class Hub:
    """The hub's process and its answers."""

    def __init__(self, queue_bytes: int) -> None:
        command = [sys.executable, "-m", "bench.pubsub_stalled", "--serve", "--queue-bytes", str(queue_bytes)]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.port = int(self.stdout.readline().split()[1])
        self.peak = 0.0

    def count(self, command: str = "count") -> tuple[int, int, str]:
        """Open subscribers, those closed as too slow, and glibc's 'in use' and 'free' MB."""
        self.stdin.write(f"{command}\n")
        self.stdin.flush()
        _, subscribers, slow, used, free = self.stdout.readline().split()
        heap = "-" if used == "-" else f"{int(used) / 2**20:.1f} MB in use, {int(free) / 2**20:.1f} MB free"
        return int(subscribers), int(slow), heap

    def rss(self) -> float:
        now = rss_mb(self.proc.pid)
        self.peak = max(self.peak, now)
        return now

    def wait(self, seconds: float) -> None:
        """Sample RSS for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.rss()
            time.sleep(SAMPLE)

    def stop(self) -> None:
        self.stdin.close()
        self.proc.wait(10)


def round_(hub: Hub, subscribers: int, publishes: int, own_events: bool) -> None:
    events = [f"big-{i}" if own_events else "big" for i in range(subscribers)]
    sockets = [stalled_subscriber(hub.port, f"stalled-{i}", event) for i, event in enumerate(events)]
    while hub.count()[0] < subscribers:
        time.sleep(SAMPLE)
    hub.wait(0.2)  # the subscriptions taken
    print(f"  {subscribers} subscribers connected: {hub.rss():.1f} MB")
    hub.peak = 0.0
    publisher = http.client.HTTPConnection("127.0.0.1", hub.port)
    headers = {"X-API-Key": KEY, "X-API-Client-Name": "bench", "Content-Type": "application/json"}
    for _ in range(publishes):
        for event in dict.fromkeys(events):  # one publish, or one to each subscriber's own event
            publisher.request("POST", "/publish", json.dumps({"event": event, "data": DATA}), headers)
            answer = publisher.getresponse()
            answer.read()
            assert answer.status == 201, answer.status
            hub.rss()
    publisher.close()
    hub.wait(2.0)  # the senders fill what the sockets take
    still, slow, heap = hub.count()
    print(f"  peak after {publishes} publishes: {hub.peak:.1f} MB ({heap}); {slow} closed as too slow so far, "
          f"{still} still subscribed")  # fmt: skip
    for sock in sockets:
        sock.close()  # unread data: the kernel sends a reset
    while hub.count()[0]:
        time.sleep(SAMPLE)
    hub.wait(2 * CLOSE_TIMEOUT + 1)  # the hub cuts a transport close_timeout after its handler ends
    print(f"  after they closed: {hub.rss():.1f} MB ({hub.count()[2]})")
    heap = hub.count("collect")[2]
    print(f"  after gc.collect() in the hub: {hub.rss():.1f} MB ({heap})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=6)
    parser.add_argument("--publishes", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=1, help="repeat, to tell a leak from memory kept for reuse")
    parser.add_argument("--queue-bytes", type=int, default=0, help="[pubsub] queue_bytes; 0: the default")
    parser.add_argument("--own-events", action="store_true", help="each subscriber its own event: no frame shared")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.queue_bytes))
        return
    hub = Hub(args.queue_bytes)
    try:
        time.sleep(0.5)  # settled
        print(f"hub process RSS before: {hub.rss():.1f} MB ({hub.count()[2]})")
        for n in range(args.rounds):
            each = " to each one's own event" if args.own_events else ""
            print(f"round {n + 1}: {args.subscribers} subscribers that never read, {args.publishes} publishes{each} "
                  f"of {len(DATA):,} '<' (frames of {FRAME:,} bytes)")  # fmt: skip
            round_(hub, args.subscribers, args.publishes, args.own_events)
    finally:
        hub.stop()


if __name__ == "__main__":
    main()
