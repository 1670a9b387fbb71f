"""The faulty devices of the fault suite, each on loopback over real sockets.

- ``ModbusProxy``: a raw TCP server in front of a real pymodbus server (the simulator) that passes requests on
  and crafts the replies to register reads: silence, noise, a wrong function code or register count, half a
  frame (the rest late, or a closed connection), another device id answering (alone, or before ours), in MBAP
  or in RTU frames with their CRC.
- ``HttpFaults``: an aiohttp middleware that makes a real application (the fake gateway, proxy or peer of the
  other tests) answer 401, 429 with or without Retry-After, 500, trickle its body a byte at a time, or reset
  the connection (SO_LINGER 0), before or halfway through the body.
- ``expired_certificate``: a certificate for 127.0.0.1 that expired in 2020, made with ``openssl ca``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

OTHER_DEVICE = 2  # the device id of the other Tracer on the bus
OTHERS_WORD = 99  # what the other device's registers hold: a charge of 99 %, never the simulator's


def crc16(data: bytes) -> bytes:
    """Modbus RTU's CRC, low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


def rtu_size(frame: bytes) -> int | None:
    """The length of the RTU reply at the start of ``frame``, or None until enough of it is there."""
    if len(frame) < 3:
        return None
    function = frame[1]
    if function & 0x80:
        return 5
    if function in (1, 2, 3, 4):
        return 5 + frame[2]
    if function == 0x2B:  # device identification: a list of (id, length, text) objects
        if len(frame) < 8:
            return None
        at = 8
        for _ in range(frame[7]):
            if len(frame) < at + 2:
                return None
            at += 2 + frame[at + 1]
        return at + 2
    return 8  # writes echo address and value


def mbap_size(frame: bytes) -> int | None:
    """The length of the MBAP frame at the start of ``frame``, or None until its header is there."""
    return None if len(frame) < 6 else 6 + int.from_bytes(frame[4:6], "big")


class ModbusProxy:
    """Between the source and the simulator on ``upstream``: requests pass, replies to FC 3/4 reads are crafted
    as ``fault`` says (None: passed unchanged). ``late``: when the rest of a ``partial`` reply follows."""

    FAULTS = ("silent", "noise", "wrong-function", "short-count", "partial", "partial-close", "wrong-device",
              "other-device-first")  # fmt: skip

    def __init__(self, upstream: int, *, rtu: bool, late: float = 0.5) -> None:
        self.upstream = upstream
        self.rtu = rtu
        self.late = late
        self.fault: str | None = None
        self.crafted = 0  # replies crafted so far
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> ModbusProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        self._writers.add(client_out)
        device_in, device_out = await asyncio.open_connection("127.0.0.1", self.upstream)
        self._writers.add(device_out)
        self._spawn(pump(client_in, device_out))
        size = rtu_size if self.rtu else mbap_size
        pending = b""
        try:
            while chunk := await device_in.read(4096):
                pending += chunk
                while (length := size(pending)) is not None and len(pending) >= length:
                    frame, pending = pending[:length], pending[length:]
                    await self._reply(frame, client_out)
        except (ConnectionError, OSError):
            pass
        finally:
            client_out.close()
            device_out.close()

    async def _reply(self, frame: bytes, out: asyncio.StreamWriter) -> None:
        function = frame[1 if self.rtu else 7]
        fault = self.fault
        if fault is None or function not in (3, 4):
            out.write(frame)
        else:
            self.crafted += 1
            if fault == "noise":
                out.write(os.urandom(len(frame)))
            elif fault == "wrong-function":  # a well-formed reply, but to a read of the other table
                out.write(self.craft(frame, function=7 - function))
            elif fault == "short-count":  # a well-formed reply with one register too few
                out.write(self.craft(frame, drop=2))
            elif fault in ("partial", "partial-close"):
                half = len(frame) // 2
                out.write(frame[:half])
                if fault == "partial-close":
                    out.close()
                    return
                self._spawn(self._later(out, frame[half:]))
            elif fault == "wrong-device":
                out.write(self.craft(frame, device=OTHER_DEVICE, word=OTHERS_WORD))
            elif fault == "other-device-first":  # the other Tracer on the bus, then ours
                out.write(self.craft(frame, device=OTHER_DEVICE, word=OTHERS_WORD) + frame)
            # "silent": nothing at all
        await out.drain()

    async def _later(self, out: asyncio.StreamWriter, rest: bytes) -> None:
        await asyncio.sleep(self.late)
        with contextlib.suppress(ConnectionError, OSError):
            if not out.is_closing():
                out.write(rest)
                await out.drain()

    def craft(self, frame: bytes, *, device: int | None = None, function: int | None = None, drop: int = 0,
              word: int | None = None) -> bytes:  # fmt: skip
        """``frame`` (a reply to an FC 3/4 read) with another device id, function code, fewer data bytes, or
        every register set to ``word``; lengths and CRC made to match."""
        head, unit, fc, data = (
            (b"", frame[0], frame[1], frame[3:-2]) if self.rtu else (frame[:4], frame[6], frame[7], frame[9:])
        )
        data = data[: len(data) - drop]
        if word is not None:
            data = struct.pack(f">{len(data) // 2}H", *[word] * (len(data) // 2))
        pdu = bytes([device if device is not None else unit, function or fc, len(data)]) + data
        if self.rtu:
            return pdu + crc16(pdu)
        return head + struct.pack(">H", len(pdu)) + pdu


async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy bytes until either end closes."""
    try:
        while data := await source.read(4096):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        sink.close()


def reset(request: web.BaseRequest) -> None:
    """Close the request's connection with a reset (SO_LINGER 0), as a crashing server or a NAT box does."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # at once: over TLS, no close_notify first (that would read as a clean end)


class HttpFaults:
    """Makes an aiohttp application fail as ``fault`` says, on the paths ``affects`` picks (None: no fault).

    ``retry_after`` is the 429's header (None: none); ``step`` the pause between the bytes of a slow body;
    ``hits`` counts the requests that met the fault."""

    FAULTS = ("401", "429", "500", "slow", "reset", "reset-body")

    def __init__(self, affects: Callable[[str], bool] = lambda path: True, step: float = 0.05) -> None:
        self.affects = affects
        self.step = step
        self.fault: str | None = None
        self.retry_after: str | None = None
        self.hits = 0

    def install(self, app: web.Application) -> web.Application:
        app.middlewares.append(self.middleware)
        return app

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        fault = self.fault
        if fault is None or not self.affects(request.path):
            return await handler(request)
        self.hits += 1
        if fault in ("401", "500"):
            return web.Response(status=int(fault), text="Unauthorized" if fault == "401" else "Internal Server Error")
        if fault == "429":
            headers = {} if self.retry_after is None else {"Retry-After": self.retry_after}
            return web.Response(status=429, headers=headers, text="Too Many Requests")
        if fault == "reset":
            reset(request)
            return web.Response()  # never sent: the connection is gone
        answer = await handler(request)
        assert isinstance(answer, web.Response) and isinstance(answer.body, bytes)
        body = answer.body if fault == "slow" else answer.body[: max(1, len(answer.body) // 2)]
        stream = web.StreamResponse(
            status=answer.status,
            headers={"Content-Type": answer.content_type, "Content-Length": str(len(answer.body))},
        )
        await stream.prepare(request)
        try:
            if fault == "reset-body":
                await stream.write(body)
                await asyncio.sleep(self.step)
                reset(request)
                return stream
            for i in range(len(body)):  # every byte in time for a per-read timeout, the whole far too late
                await stream.write(body[i : i + 1])
                await asyncio.sleep(self.step)
        except ConnectionError:
            pass  # the client gave up
        return stream


def expired_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, valid on 1 January 2020 only, and its key (PEM files). Its
    subject differs from the conftest certificate's, so trusting both, OpenSSL finds this one as its issuer."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ca.cnf").write_text(
        "[ca]\ndefault_ca = expired\n[expired]\ndatabase = index.txt\nserial = serial\nnew_certs_dir = .\n"
        "default_md = sha256\npolicy = anything\nunique_subject = no\n[anything]\ncommonName = supplied\n"
        "[leaf]\nsubjectAltName = IP:127.0.0.1\nbasicConstraints = critical,CA:TRUE\n"
    )
    (folder / "index.txt").write_text("")
    (folder / "serial").write_text("01\n")
    cert, key = folder / "cert.pem", folder / "key.pem"
    for command in (
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "key.pem", "-out", "req.csr", "-subj", "/CN=expired.nutbridge.test"],
        ["openssl", "ca", "-batch", "-selfsign", "-config", "ca.cnf", "-keyfile", "key.pem", "-in", "req.csr",
         "-out", "cert.pem", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-extensions", "leaf",
         "-notext"],
    ):  # fmt: skip
        subprocess.run(command, cwd=folder, check=True, capture_output=True, timeout=60)
    return cert, key
