"""The Hubitat line protocol over real TCP sockets on loopback: queries, framing, limits, UpTime's clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from nutbridge.config_sections import LineSocketConfig
from nutbridge.errors import NutbridgeError, SourceError
from nutbridge.feeds.linesocket import LineSocket, set_keepalive
from nutbridge.model import Reading
from nutbridge.power import PowerState
from nutbridge.snapshot import Comms, Snapshot
from tests.helpers import GUARD, until

ROOT = Path(__file__).resolve().parents[2]
ENVOY_VARIABLES = {
    "battery.charge": "87",
    "ups.status": "OL CHRG",
    "input.voltage": "240.1",
    "input.frequency": "50.0",
}
TRACER_VARIABLES = {"battery.charge": "87", "input.voltage": "18.20"}  # PV side: DC, no frequency
WAIT = 2.0  # s: the longest a reply may take


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    """A local wall-clock time in June 2024."""
    return dt.datetime(2024, 6, day, hour, minute, second).timestamp()


def snapshot(
    t: float | None = None,
    comms: Comms = Comms.OK,
    variables: Mapping[str, str | None] = ENVOY_VARIABLES,
    alarm: bool = False,
    seq: int = 1,
    **reading: Any,
) -> Snapshot:
    t = time.time() if t is None else t
    if comms is not Comms.OK:
        return Snapshot(seq=seq, time=t, comms=comms, variables=MappingProxyType({}), error=SourceError("no answer"))
    values: dict[str, Any] = {
        "pv_power": 2984.4,
        "energy_generated_today": 12.3456,
        "energy_generated_total": 4567.8,
        "battery_voltage": 13.1,
    }
    values.update(reading)
    power = PowerState(on_line=True, low=False, charging=True, discharging=False, alarm=alarm)
    return Snapshot(
        seq=seq,
        time=t,
        comms=comms,
        reading=Reading(time=t, **values),
        power=power,
        variables=MappingProxyType(dict(variables)),
    )


class Client:
    """A raw TCP client, as a Hubitat hub is one."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def lines(self, n: int) -> list[str]:
        """The next ``n`` reply lines; each must end in exactly one ``\\n``."""
        out = []
        for _ in range(n):
            line = await asyncio.wait_for(self.reader.readline(), WAIT)
            assert line.endswith(b"\n") and not line.endswith(b"\r\n"), line
            out.append(line.decode("ascii")[:-1])
        return out

    async def ask(self, data: bytes, n: int = 1) -> list[str]:
        await self.send(data)
        return await self.lines(n)

    async def closed(self, within: float = WAIT) -> bool:
        """True when the server closes (end of stream, or a reset) within ``within`` seconds."""
        try:
            return await asyncio.wait_for(self.reader.read(1 << 20), within) == b""
        except ConnectionResetError:
            return True

    async def quiet(self, within: float = 0.2) -> bool:
        """True when nothing arrives within ``within`` seconds."""
        try:
            await asyncio.wait_for(self.reader.read(1), within)
        except TimeoutError:
            return True
        return False


@pytest.fixture
async def connect() -> AsyncIterator[Any]:
    """connect(port, rcvbuf=None, source=None) → a Client (from ``source``, an address in 127.0.0.0/8, which
    Linux routes to the loopback as a whole: another host, as the server sees it); every one is closed at the end."""
    clients: list[Client] = []

    async def make(port: int, rcvbuf: int | None = None, source: str | None = None) -> Client:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source is not None:
            sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        client = Client(*await asyncio.open_connection(sock=sock))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.writer.transport.abort()
    await asyncio.sleep(0)


def config(**kw: Any) -> LineSocketConfig:
    return LineSocketConfig(listen=("127.0.0.1", 0), **kw)


@pytest.fixture
async def ls() -> AsyncIterator[LineSocket]:
    async with LineSocket(config()) as sink:
        yield sink


async def test_each_query(ls: LineSocket, connect: Any) -> None:
    t = time.time()
    await ls.update(snapshot(t))
    c = await connect(ls.port)
    assert ls.port != 0 and str(ls) == f"line protocol on 127.0.0.1:{ls.port}"
    assert await c.ask(b"PowerNow\n") == ["success: PowerNow 2984"]
    assert await c.ask(b"PowerToday\n") == ["success: PowerToday 12346"]  # Wh
    assert await c.ask(b"PowerTotal\n") == ["success: PowerTotal 4567800"]
    assert await c.ask(b"Status\n") == ["success: Status 7"]
    assert await c.ask(b"GridV\n") == ["success: GridV 240.1"]
    assert await c.ask(b"GridHZ\n") == ["success: GridHZ 50.0"]
    assert await c.ask(b"UpTime\n") == ["success: UpTime 0"]
    assert await c.ask(b"TimeStamp\n") == [f"success: TimeStamp {int(t)}"]
    assert await c.ask(b"battery.charge\n") == ["success: battery.charge 87"]
    assert await c.ask(b"ups.status\n") == ["success: ups.status OL CHRG"]  # the value is the rest of the line


async def test_several_queries_in_one_packet_in_order_any_case_any_line_ending(ls: LineSocket, connect: Any) -> None:
    await ls.update(snapshot())
    c = await connect(ls.port)
    replies = await c.ask(b"POWERNOW\r\nstatus\n  gridHz  \r\nBATTERY.CHARGE\rpowernow\nnonsense\n", 6)
    assert replies == [
        "success: PowerNow 2984",  # the name as the table spells it, whatever case the query used
        "success: Status 7",
        "success: GridHZ 50.0",
        "success: battery.charge 87",
        "success: PowerNow 2984",  # a lone \r separates queries too
        "error: invalid query",
    ]
    await c.send(b"Pow")  # a query split across two packets is held until its line ends
    assert await c.quiet()
    assert await c.ask(b"erNow\n") == ["success: PowerNow 2984"]


async def test_blank_lines_are_keepalives(ls: LineSocket, connect: Any) -> None:
    await ls.update(snapshot())
    c = await connect(ls.port)
    await c.send(b"\n\r\n   \n\t\r\n")
    assert await c.quiet()
    assert await c.ask(b"\nStatus\n\n") == ["success: Status 7"]
    assert await c.quiet()


async def test_close_ends_the_connection(ls: LineSocket, connect: Any) -> None:
    await ls.update(snapshot())
    c = await connect(ls.port)
    assert await c.ask(b"PowerNow\nCLOSE\nStatus\n") == ["success: PowerNow 2984"]
    assert await c.closed()
    c = await connect(ls.port)
    await c.send(b"quit\n")
    assert await c.closed()
    c = await connect(ls.port)  # a last query without a line ending is answered when the input ends
    await c.send(b"Status")
    c.writer.write_eof()
    assert await c.lines(1) == ["success: Status 7"]
    assert await c.closed()
    await until(lambda: ls.connections == 0, within=GUARD)


async def test_unknown_queries_and_nut_variables(ls: LineSocket, connect: Any) -> None:
    c = await connect(ls.port)
    assert await c.ask(b"battery.charge\n") == ["error: no data"]  # no poll yet: no name is known to be wrong
    await ls.update(snapshot())
    assert await c.ask(b"Hello\nno.such.variable\nbattery.charge extra\n\x00\xff\n", 4) == ["error: invalid query"] * 4
    assert await c.ask(b"Battery.Charge\n") == ["success: battery.charge 87"]


async def test_no_data_until_a_poll_answers_and_when_comms_are_lost(ls: LineSocket, connect: Any) -> None:
    c = await connect(ls.port)
    queries = b"PowerNow\nPowerToday\nGridV\nUpTime\nTimeStamp\nStatus\n"
    assert await c.ask(queries, 6) == ["error: no data"] * 5 + ["success: Status 2"]  # syncing
    await ls.update(snapshot(comms=Comms.FAILING))
    assert await c.ask(b"PowerNow\nStatus\n", 2) == ["error: no data", "success: Status 2"]
    t = time.time()
    await ls.update(snapshot(t))
    await ls.update(snapshot(comms=Comms.FAILING, seq=2))  # inside the grace: the last good values, as NUT
    assert await c.ask(b"PowerNow\nStatus\n", 2) == ["success: PowerNow 2984", "success: Status 7"]
    await ls.update(snapshot(comms=Comms.LOST, seq=3))
    replies = await c.ask(queries + b"battery.charge\n", 7)
    assert replies == [
        "error: no data",
        "error: no data",
        "error: no data",
        "success: UpTime 0",  # the past stays known
        f"success: TimeStamp {int(t)}",  # when the device last answered: what a driver wants to show now
        "success: Status 1",  # comms lost
        "error: no data",
    ]


async def test_not_available(ls: LineSocket, connect: Any) -> None:
    await ls.update(snapshot(variables=TRACER_VARIABLES, energy_generated_today=None, pv_power=None))
    c = await connect(ls.port)
    replies = await c.ask(b"GridV\nGridHZ\nPowerToday\nPowerNow\nPowerTotal\n", 5)
    assert replies == ["error: not available"] * 4 + ["success: PowerTotal 4567800"]


@pytest.mark.parametrize(
    ("reading", "alarm", "code"),
    [
        ({"pv_power": 12.0}, False, 7),  # generating
        ({"pv_power": 0.0, "pv_voltage": 19.5}, False, 6),  # PV voltage above the battery's, 0 W: full battery
        ({"pv_power": 0.0, "pv_voltage": 0.4}, False, 3),  # night
        ({"pv_power": None}, False, 3),  # nothing measured (an Envoy at night)
        ({"pv_power": 500.0, "faults": ("over temperature",)}, False, 0),  # the device's own fault
        ({"pv_power": 500.0}, True, 0),  # ALARM in ups.status
    ],
)
async def test_status_mapping(reading: dict[str, Any], alarm: bool, code: int) -> None:
    sink = LineSocket(config())
    await sink.update(snapshot(alarm=alarm, **reading))
    assert sink.answer("Status") == f"success: Status {code}"


async def test_an_over_long_line_is_refused_and_closed(connect: Any) -> None:
    async with LineSocket(config(max_line=32)) as ls:
        await ls.update(snapshot())
        c = await connect(ls.port)
        fits = b"battery.charge" + b" " * 18  # 32 bytes, and the \r\n is not counted
        assert await c.ask(fits + b"\r\n") == ["success: battery.charge 87"]
        assert await c.ask(b"x" * 33 + b"\nStatus\n") == ["error: line too long"]  # a terminated line
        assert await c.closed()
        c = await connect(ls.port)
        assert await c.ask(b"y" * 5000) == ["error: line too long"]  # no line ending in sight
        assert await c.closed()


async def test_idle_connections_from_one_address_lock_no_one_out(connect: Any) -> None:
    async with LineSocket(config()) as ls:  # the defaults: 32 connections, 8 from one address
        await ls.update(snapshot())
        hogs = [await connect(ls.port, source="127.0.0.2") for _ in range(32)]
        replies = [await hog.ask(b"Status\n") for hog in hogs]  # then they say nothing more
        real = await connect(ls.port)
        assert await real.ask(b"Status\n") == ["success: Status 7"]
        assert replies == [["success: Status 7"]] * 8 + [["error: too many connections from this address"]] * 24
        for hog in hogs[8:]:
            assert await hog.closed()
        assert ls.connections == 9
    assert LineSocket(config(max_connections=1000)).per_client == 250  # a quarter, at least 8
    assert LineSocket(config(max_connections=1000, max_per_client=3)).per_client == 3


async def test_when_all_are_taken_the_one_quiet_the_longest_makes_room(
    connect: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="nutbridge.feeds.linesocket")
    async with LineSocket(config(max_connections=3)) as ls:
        await ls.update(snapshot())
        quiet = await connect(ls.port, source="127.0.0.2")
        assert await quiet.ask(b"Status\n") == ["success: Status 7"]
        busy = [await connect(ls.port, source=source) for source in ("127.0.0.3", "127.0.0.4")]
        for client in busy:
            assert await client.ask(b"Status\n") == ["success: Status 7"]
        newcomer = await connect(ls.port)
        assert await newcomer.ask(b"PowerNow\n") == ["success: PowerNow 2984"]
        assert await quiet.closed()  # without a word: an unasked line would read as the answer to its next query
        for client in busy:
            assert await client.ask(b"PowerNow\n") == ["success: PowerNow 2984"]
        assert ls.connections == 3
        assert "all 3 connections taken; closing 127.0.0.2:" in caplog.text
        assert "closed to make room for a new connection" in caplog.text


async def test_idle_timeout_and_keepalive(connect: Any) -> None:
    async with LineSocket(config(idle_timeout=0.3)) as ls:
        c = await connect(ls.port)
        t0 = time.monotonic()
        for _ in range(3):  # blank lines keep it open
            await asyncio.sleep(0.15)
            await c.send(b"\n")
        assert await c.quiet(0.1)
        assert await c.closed(GUARD)  # closed once idle (a guard, not a timing)
        assert time.monotonic() - t0 > 0.6  # not before the blank lines and then idle_timeout: the sleeps' sum
        c = await connect(ls.port)
        await c.ask(b"Status\n")
        (accepted,) = ls._clients.values()
        sock = accepted.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4


def test_set_keepalive_on_a_plain_socket() -> None:
    with socket.socket() as sock:
        set_keepalive(sock)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1


async def test_a_client_that_never_reads_holds_up_no_one(connect: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="nutbridge.feeds.linesocket")
    async with LineSocket(config(), write_timeout=0.5) as ls:
        await ls.update(snapshot())
        slow = await connect(ls.port, rcvbuf=4096)
        slow.writer.write(b"PowerNow\n" * 300_000)  # 6.9 MB of replies it will never read
        await asyncio.sleep(0.2)
        fast = await connect(ls.port)
        for _ in range(20):  # answered, each one, while the slow one's replies pile up
            assert await fast.ask(b"Status\n") == ["success: Status 7"]
        # the slow one is cut off once its buffer has been full for write_timeout (a loaded machine fills it late)
        await until(lambda: ls.connections == 1, within=GUARD)
        assert "did not read its replies for 0.5 s" in caplog.text
        assert await fast.ask(b"PowerNow\n") == ["success: PowerNow 2984"]


async def test_uptime_counts_generating_time_and_restarts_at_local_midnight(connect: Any) -> None:
    now = [at(1, 12)]
    async with LineSocket(config(), clock=lambda: now[0]) as ls:

        async def poll(t: float, pv: float | None = 100.0, comms: Comms = Comms.OK) -> None:
            await ls.update(snapshot(t, comms=comms, pv_power=pv))

        await poll(at(1, 10, 0))
        await poll(at(1, 10, 1))  # +60: PV at 10:00
        await poll(at(1, 10, 2), pv=0.0)  # +60: PV at 10:01 lasted until this poll
        await poll(at(1, 10, 3), pv=0.0)  # +0
        await poll(at(1, 10, 4))  # +0: no PV at 10:03
        await poll(at(1, 10, 5), comms=Comms.FAILING)
        await poll(at(1, 10, 6))  # +0: a failed poll in between breaks the chain
        await poll(at(1, 10, 7))  # +60
        await poll(at(1, 13, 0))  # +0: three hours without a poll (a suspend) count for nothing
        c = await connect(ls.port)
        assert await c.ask(b"UpTime\n") == ["success: UpTime 180"]
        now[0] = at(2, 0, 1)  # past midnight, and no poll of the new day yet
        assert await c.ask(b"uptime\n") == ["success: UpTime 0"]
        await poll(at(1, 23, 59, 30))
        await poll(at(2, 0, 0, 30))  # across midnight: only the 30 s after it count for the new day
        assert await c.ask(b"UpTime\n") == ["success: UpTime 30"]
        await poll(at(2, 0, 1, 30))
        assert await c.ask(b"UpTime\n") == ["success: UpTime 90"]


async def test_leaving_closes_every_connection_cleanly(connect: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with LineSocket(config()) as ls:
        await ls.update(snapshot())
        clients = [await connect(ls.port) for _ in range(5)]
        for c in clients:
            assert await c.ask(b"Status\n") == ["success: Status 7"]
        await clients[0].send(b"Pow")  # half a query
    for _ in range(3):
        await asyncio.sleep(0)  # the callbacks asyncio runs when a connection's task ends
    for c in clients:
        assert await c.closed()
    assert "closed at shutdown" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_listen_errors() -> None:
    with pytest.raises(NutbridgeError, match="listen is not set"):
        LineSocket(LineSocketConfig())
    async with LineSocket(config()) as first:
        taken = LineSocketConfig(listen=("127.0.0.1", first.port))
        with pytest.raises(NutbridgeError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            async with LineSocket(taken):
                pass


def test_the_example_hubitat_driver_uses_eol() -> None:
    driver = (ROOT / "examples" / "hubitat_linesocket.groovy").read_text()
    assert re.search(r"interfaces\.rawSocket\.connect\(ip, port as int, eol: ?'\\n'\)", driver)
    assert "void socketStatus(String" in driver and "void parse(String" in driver


def test_the_daemon_serves_the_line_protocol_from_its_polls(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import daemon_config
    from tests.helpers import free_port

    port = free_port()
    config = daemon_config(tmp_path, f'[linesocket]\nlisten = "127.0.0.1:{port}"\n')
    daemon = subprocess.Popen([sys.executable, "-m", "nutbridge", "-c", str(config)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        answer = ""
        while not answer.startswith("success: PowerNow") and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    s.sendall(b"PowerNow\nbattery.charge\n")
                    answer = s.makefile("rb").readline().decode()
            except OSError:
                time.sleep(0.2)
        assert answer.startswith("success: PowerNow ") and int(answer.split()[2]) > 0, answer
    finally:
        daemon.terminate()
        _, err = daemon.communicate(timeout=10)
    assert daemon.returncode == 0, err.decode()
