"""Recorded IQ Gateway firmware, end to end: each fixture set of test-fixtures/envoy/firmware/ (real gateway answers
that pyenphase publishes, see its README there) served by path over real HTTPS, read by nutbridge's daemon in -s
mode into a real port file.

The expected NUT variables are written from the recorded answers, never from nutbridge's output: the status from
the relay's mains_oper_state, battery.charge and battery.capacity from secctrl's agg_soc and Max_energy, meter
values as bash's printf rounds the recorded figures, and the sign of battery.current from the storage meter (the
gateway's storage power is negative while the battery charges).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import pytest
from aiohttp import web

from nutbridge import daemon
from nutbridge.config import load
from nutbridge.nut.portfile import PortFile
from nutbridge.server.app import Sidecar, tls_context

FIRMWARE = Path(__file__).parents[3] / "test-fixtures" / "envoy" / "firmware"
SERIAL = "202400000001"


@dataclass
class RecordedGateway:
    """A gateway answering each path with its recorded file (``ivp/meters/readings`` → ``ivp_meters_readings``,
    ``info.xml`` → ``info``); a path that was not recorded is answered 404, as a firmware without it would."""

    folder: Path
    asked: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        async def answer(request: web.Request) -> web.Response:
            path = request.path.lstrip("/")
            self.asked.append(path)
            if not request.headers.get("Authorization", "").startswith("Bearer "):
                return web.Response(status=401)
            name = "info" if path == "info.xml" else path.replace("/", "_")
            recorded = self.folder / name
            if not recorded.is_file():
                return web.Response(status=404, text="Not Found")
            return web.Response(body=recorded.read_bytes(), content_type="application/json")

        app = web.Application()
        app.router.add_get("/{path:.*}", answer)
        return app


@contextlib.asynccontextmanager
async def serving(gateway: RecordedGateway, certificate: tuple[Path, Path]) -> AsyncIterator[str]:
    cert, key = certificate
    async with Sidecar(gateway.app(), "127.0.0.1", 0, tls=tls_context(cert, key)) as server:
        yield f"127.0.0.1:{server.port}"


async def run_once(
    tmp_path: Path, certificate: tuple[Path, Path], fixture: str
) -> tuple[int, dict[str, str], list[str]]:
    """nutbridge -s against the recorded gateway: its exit status, the port file's variables, the paths asked."""
    gateway = RecordedGateway(FIRMWARE / fixture)
    tmp_path.chmod(0o700)
    token = jwt.encode({"exp": int(time.time()) + 30 * 86400, "aud": SERIAL}, "k" * 32, algorithm="HS256")
    (tmp_path / "envoy.token").write_text(token)  # a token in hand: the cloud is never asked
    (tmp_path / "envoy.token").chmod(0o600)
    (tmp_path / "ups.dev").write_text("")
    async with serving(gateway, certificate) as host:
        config_file = tmp_path / "nutbridge.toml"
        config_file.write_text(
            f'[source]\nkind = "envoy"\nhost = "{host}"\nserial = "{SERIAL}"\nusername = "me@example.org"\n'
            f'password = "pw"\ntoken_file = "envoy.token"\napi_timeout = 5\n'
            f'[nut]\nport_file = "ups.dev"\nversion = "2.8.0"\n'
        )
        config_file.chmod(0o600)
        config = load(config_file)
        assert config.nut.port_file is not None
        status = await daemon.run(config, PortFile(config.nut.port_file), single=True, verbose=False, demo=False)
    shown = tmp_path / "ups.dev"
    text = shown.read_text() if shown.exists() else ""  # a failed poll renames it to -nocomms (grace 0 in -s)
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        values[name] = value.removesuffix(" # nutbridge")
    return status, values, gateway.asked


def recorded(fixture: str, name: str) -> object:
    return json.loads((FIRMWARE / fixture / name).read_text())


def software(fixture: str) -> str:
    found = re.search(r"<software>([^<]+)</software>", (FIRMWARE / fixture / "info").read_text())
    assert found is not None
    return found.group(1)


@dataclass(frozen=True)
class Expected:
    """What NUT should see, from the recorded answers (the comments say which)."""

    status: str
    values: dict[str, str]
    absent: tuple[str, ...] = ()


NO_BATTERY = ("battery.charge", "battery.capacity", "battery.runtime", "battery.current", "battery.voltage")
SETS = {
    # D7.3, 3 Encharge + Enpower, no meters recorded: status relay closed, secctrl agg_soc 100, Max_energy 10080
    "7.3.517": Expected("OL", {"battery.charge": "100", "battery.capacity": "10080"},
                        absent=("input.realpower", "battery.current")),
    # D7.3, three phase, no battery (inventory [], Max_energy 0): net-consumption -36.162 W at 235.201 V, its
    # lines -36.162 W, -0.0 W (printf keeps the sign, as enphase-monitor writes it) and -0.451 W
    "7.3.466_with_cts_3phase": Expected("OL", {"input.realpower": "-36.2", "input.voltage": "235.2",
                                               "input.phases": "3", "input.L1.realpower": "-36.2",
                                               "input.L2.realpower": "-0.0", "input.L3.realpower": "-0.5"},
                                        absent=NO_BATTERY),
    # D7.6, 1 Encharge at agg_soc 15 (< 20: LB), Max_energy 3500; net-consumption 522.043 W at 238.282 V
    "7.6.185_with_cts_and_battery_3t": Expected("OL LB", {"battery.charge": "15", "battery.capacity": "3500",
                                                          "input.realpower": "522.0", "input.current": "2.19"}),
    # D8.2, relay open (generator running: off grid), 1 Encharge at 98 %, Max_energy 3360
    "8.2.127_with_generator_running": Expected("OB", {"battery.charge": "98", "battery.capacity": "3360"}),
    # D8.2, split phase, 5 Encharge at 21 %: the storage meter -2579.823 W at 242.582 V is charging
    "8.2.127_with_3cts_and_battery_split": Expected("OL CHRG", {"battery.charge": "21", "battery.current": "10.63",
                                                                "battery.capacity": "25000"}),
    # D8.2, split phase, 5 Encharge at 46 %: storage -7083.656 W at 247.392 V beside 7131 W of PV: charging hard
    "8.2.4286_with_3cts_and_battery_split": Expected("OL CHRG", {"battery.charge": "46", "battery.current": "28.63",
                                                                 "input.realpower": "1749.5", "input.current": "7.07"}),
    # D8.2, AC Batteries with an Encharge: agg_soc 39 of Max_energy 7220 (the ACBs counted there, not in inventory)
    "8.2.4382_ACB": Expected("OL", {"battery.charge": "39", "battery.capacity": "7220"}),
    # D8.3, IQ Meter Collar, 2 Encharge at 89 %: storage -1297.667 W at 240.684 V: charging
    "8.3.1598_collar": Expected("OL CHRG", {"battery.charge": "89", "battery.current": "5.39",
                                            "battery.capacity": "10000", "input.realpower": "3760.8"}),
    # D8.3, AC Batteries alone, empty (agg_soc 0, Max_energy 2480; production.json percentFull 1): a battery, at 0
    "8.3.5169_ACB_inventory": Expected("OL LB", {"battery.charge": "0", "battery.capacity": "2480",
                                                 "input.realpower": "1419.4", "output.realpower": "1414.8"}),
    # D8.3, Enpower and a generator, no battery (ENCHARGE devices [], Max_energy 0): never LB; reports recorded
    "8.3.5169_with_generator": Expected("OL", {"input.realpower": "173.4", "output.realpower": "3069.4",
                                               "output.voltage": "248.4"}, absent=(*NO_BATTERY, "ups.load")),
    # D8.3, ivp/ensemble/relay recorded (closed), no battery; its only consumption meter is total-consumption
    "8.3.5433_tot_is_net_cons": Expected("OL", {"output.realpower": "786.5"}, absent=NO_BATTERY),
}  # fmt: skip


@pytest.mark.parametrize("fixture", sorted(SETS))
async def test_a_recorded_gateway_end_to_end(tmp_path: Path, certificate: tuple[Path, Path], fixture: str) -> None:
    expected = SETS[fixture]
    status, values, asked = await run_once(tmp_path, certificate, fixture)
    assert status == 0, values
    assert values["ups.status"] == expected.status
    assert values["ups.firmware"] == software(fixture)
    for name, value in expected.values.items():
        assert values.get(name) == value, name
    for name in expected.absent:
        assert name not in values, name
    assert max(asked.count(path) for path in set(asked)) == 1  # one poll: nothing asked twice, not even a 404


def test_the_expectations_follow_the_recordings() -> None:
    """The figures above, checked against the files themselves (so a copied fixture cannot drift from them)."""
    for fixture, expected in SETS.items():
        secctrl = recorded(fixture, "ivp_ensemble_secctrl")
        assert isinstance(secctrl, dict)
        if "battery.charge" in expected.values:
            assert expected.values["battery.charge"] == str(secctrl["agg_soc"])
            assert ("LB" in expected.status.split()) == (secctrl["agg_soc"] < 20)
        if "battery.capacity" in expected.values:
            assert expected.values["battery.capacity"] == str(secctrl["Max_energy"])
        if "battery.current" in expected.values:  # the storage meter's sign: negative = charging = CHRG, + current
            meters = recorded(fixture, "ivp_meters")
            readings = recorded(fixture, "ivp_meters_readings")
            assert isinstance(meters, list) and isinstance(readings, list)
            storage = next(m["eid"] for m in meters if m["measurementType"] == "storage")
            watts = next(r["activePower"] for r in readings if r["eid"] == storage)
            assert watts < 0 and "CHRG" in expected.status and float(expected.values["battery.current"]) > 0


def test_the_gateway_documents_its_storage_sign_in_production_json() -> None:
    """production.json pairs a positive wNow with "discharging" (8.2.4382's AC Batteries, 260 W) and a small
    negative one with "idle" (8.3.5169's): positive storage power is discharge, so negative is charge."""
    acb = recorded("8.2.4382_ACB", "production.json")
    assert isinstance(acb, dict)
    assert [(s["wNow"], s["state"]) for s in acb["storage"]] == [(260, "discharging")]


async def test_a_firmware_without_the_grid_relay_is_named_once_and_not_retried(
    tmp_path: Path, certificate: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """D7.6.175 without an IQ System Controller: neither ivp/ensemble/relay nor ivp/ensemble/status answers
    (404). One line names the endpoint and the firmware; a 404 is an answer, so it is not asked again."""
    status, _, asked = await run_once(tmp_path, certificate, "7.6.175_standard")
    assert status != 0
    lines = [r.getMessage() for r in caplog.records if "has no ivp/ensemble/relay" in r.getMessage()]
    assert len(lines) >= 1 and "firmware D7.6.175" in lines[0] and "HTTP 404" in lines[0]
    source_log = "nutbridge.devices.enphase.source"
    assert sum("has no ivp/ensemble/relay" in r.getMessage() and r.name == source_log for r in caplog.records) == 1
    assert asked.count("ivp/ensemble/relay") == 1 and asked.count("ivp/ensemble/status") == 1
    assert "without an answer" not in caplog.text
