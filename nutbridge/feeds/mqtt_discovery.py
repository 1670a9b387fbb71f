"""Home Assistant's MQTT discovery: the entities nutbridge announces (one row each: key, name, where its value
comes from, device class, unit), one more for each numeric field a family's own reading adds (its device class
and unit from the words of its name), which of them a poll has a value for, and the retained config documents."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nutbridge import __version__
from nutbridge.model import ChargeStage, DeviceInfo, Reading
from nutbridge.snapshot import Snapshot
from nutbridge.snapshot_json import numbers


@dataclass(frozen=True, slots=True, kw_only=True)
class Entity:
    """One Home Assistant entity: where its value sits in the state message and how HA should show it."""

    key: str  # object_id in the discovery topic, and the unique_id's tail
    name: str
    component: str = "sensor"
    reading: str | None = None  # a Reading field ...
    variable: str | None = None  # ... or a NUT variable ...
    flag: str | None = None  # ... or a top-level boolean of the state message
    device_class: str | None = None
    state_class: str | None = None
    unit: str | None = None
    precision: int | None = None
    diagnostic: bool = False
    options: tuple[str, ...] = ()  # an enum sensor's states

    def template(self) -> str:
        """The value_template that picks this entity's value out of the state message."""
        if self.reading is not None:
            return f"{{{{ value_json.reading.{self.reading} }}}}"
        if self.variable is not None:
            return f"{{{{ value_json.nut.get('{self.variable}') }}}}"
        return f"{{{{ 'ON' if value_json.{self.flag} else 'OFF' }}}}"


def _measure(key: str, name: str, device_class: str, unit: str, precision: int, **extra: Any) -> Entity:
    return Entity(
        key=key,
        name=name,
        reading=key,
        device_class=device_class,
        state_class=extra.pop("state_class", "measurement"),
        unit=unit,
        precision=precision,
        **extra,
    )


ENTITIES: tuple[Entity, ...] = (
    _measure("pv_power", "PV power", "power", "W", 0),
    _measure("pv_voltage", "PV voltage", "voltage", "V", 1),
    _measure("pv_current", "PV current", "current", "A", 2),
    _measure("battery_charge", "Battery charge", "battery", "%", 0),
    _measure("battery_voltage", "Battery voltage", "voltage", "V", 2),
    _measure("battery_current", "Battery current", "current", "A", 2),  # net: negative while discharging
    _measure("battery_temperature", "Battery temperature", "temperature", "°C", 1, diagnostic=True),
    _measure("load_power", "Load power", "power", "W", 0),
    _measure("load_voltage", "Load voltage", "voltage", "V", 1),
    _measure("load_current", "Load current", "current", "A", 2),
    _measure("controller_temperature", "Controller temperature", "temperature", "°C", 1, diagnostic=True),
    # Only the lifetime counters feed the statistics (total_increasing); the day's counters reset at midnight
    # on the device's clock, so they carry no state_class (one sensor per quantity, as HA asks).
    _measure("energy_generated_total", "Energy generated", "energy", "kWh", 2, state_class="total_increasing"),
    _measure("energy_consumed_total", "Energy consumed", "energy", "kWh", 2, state_class="total_increasing"),
    _measure("energy_generated_today", "Energy generated today", "energy", "kWh", 2, state_class=None),
    _measure("energy_consumed_today", "Energy consumed today", "energy", "kWh", 2, state_class=None),
    _measure("battery_voltage_max_today", "Battery voltage max today", "voltage", "V", 2, diagnostic=True),
    _measure("battery_voltage_min_today", "Battery voltage min today", "voltage", "V", 2, diagnostic=True),
    Entity(
        key="charge_stage",
        name="Charge stage",
        reading="charge_stage",
        device_class="enum",
        options=tuple(s.value for s in ChargeStage),
    ),
    Entity(
        key="runtime",
        name="Battery runtime",
        variable="battery.runtime",
        device_class="duration",
        state_class="measurement",
        unit="s",
        precision=0,
    ),
    Entity(key="status", name="UPS status", variable="ups.status"),
    Entity(key="charger_status", name="Charger status", variable="battery.charger.status"),
    Entity(key="alarm", name="Alarm", variable="ups.alarm", diagnostic=True),
    Entity(key="on_battery", name="On battery", component="binary_sensor", flag="on_battery"),
    # device_class battery: on means low
    Entity(
        key="low_battery", name="Battery low", component="binary_sensor", flag="low_battery", device_class="battery"
    ),
    Entity(
        key="comms",
        name="Comms",
        component="binary_sensor",
        flag="comms_ok",
        device_class="connectivity",
        diagnostic=True,
    ),
)


# A family field's quantity from a word of its name, as /metrics names its unit: (word, device class, unit, digits)
QUANTITIES = (
    ("voltage", "voltage", "V", 1),
    ("current", "current", "A", 2),
    ("power", "power", "W", 0),
    ("temperature", "temperature", "°C", 1),
    ("charge", "battery", "%", 0),
)


def family_entity(field: str) -> Entity:
    """The entity of a numeric field a family's reading adds (``grid_power`` → "Grid power", power, W)."""
    name = field.replace("_", " ").capitalize()
    if field.startswith("energy_"):  # kWh; only a lifetime counter feeds the statistics, as in ENTITIES
        total = "total_increasing" if field.endswith("_total") else None
        return _measure(field, name, "energy", "kWh", 2, state_class=total)
    for word, device_class, unit, precision in QUANTITIES:
        if word in field:
            return _measure(field, name, device_class, unit, precision)
    return Entity(key=field, name=name, reading=field, state_class="measurement")  # a number of no known unit


TAKEN = {e.key for e in ENTITIES} | {e.reading for e in ENTITIES if e.reading is not None}


def family_entities(reading: Reading) -> tuple[Entity, ...]:
    """An entity for each numeric field with a value that ``reading``'s own type adds to ENTITIES' (none for the
    base Reading). A field whose name an entity of ENTITIES already holds is left out: unique_ids stay stable."""
    return tuple(family_entity(field) for field in numbers(reading) if field not in TAKEN)


def entities_present(snapshot: Snapshot) -> set[str]:
    """Keys of the entities that ``snapshot`` (a good one) has a value for, a family's own among them."""
    reading, variables = snapshot.reading, snapshot.variables
    keys = {"on_battery", "low_battery"} if snapshot.power is not None else set()
    if reading is not None:
        keys.update(e.key for e in family_entities(reading))
    for entity in ENTITIES:
        if entity.reading is not None:
            value = None if reading is None else getattr(reading, entity.reading)
        elif entity.variable is not None:
            value = variables.get(entity.variable)
        else:
            continue
        if value is not None:
            keys.add(entity.key)
    return keys


def device_block(name: str, node_id: str, info: DeviceInfo | None) -> dict[str, Any]:
    """The device block every entity shares."""
    block: dict[str, Any] = {"identifiers": [f"nutbridge_{node_id}"], "name": name}
    if info is not None:
        block["manufacturer"] = info.mfr
        block["model"] = info.model
        if info.firmware:
            block["sw_version"] = info.firmware
        if info.serial:
            block["serial_number"] = info.serial
    return block


def discovery_configs(
    seen: set[str],
    *,
    entities: Iterable[Entity],
    node_id: str,
    prefix: str,
    state_topic: str,
    availability_topic: str,
    device: dict[str, Any],
) -> dict[str, str]:
    """Topic → retained config (JSON) of every entity of ``entities`` in ``seen``."""
    origin = {"name": "nutbridge", "sw_version": __version__}
    bridge = {"topic": availability_topic}
    device_up = {
        "topic": state_topic,
        "value_template": "{{ 'offline' if value_json.comms == 'lost' else 'online' }}",
    }
    configs: dict[str, str] = {}
    for entity in entities:
        if entity.key not in seen:
            continue
        config: dict[str, Any] = {
            "name": entity.name,
            "unique_id": f"nutbridge_{node_id}_{entity.key}",
            "state_topic": state_topic,
            "value_template": entity.template(),
            "availability": [bridge] if entity.key == "comms" else [bridge, device_up],
            "availability_mode": "all",
            "device": device,
            "origin": origin,
        }
        for option, value in (
            ("device_class", entity.device_class),
            ("state_class", entity.state_class),
            ("unit_of_measurement", entity.unit),
            ("suggested_display_precision", entity.precision),
            ("entity_category", "diagnostic" if entity.diagnostic else None),
            ("options", list(entity.options) or None),
        ):
            if value is not None:
                config[option] = value
        topic = f"{prefix}/{entity.component}/{node_id}/{entity.key}/config"
        configs[topic] = json.dumps(config, separators=(",", ":"), ensure_ascii=False)
    return configs
