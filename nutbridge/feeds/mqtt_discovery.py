"""Home Assistant's MQTT discovery: the entities nutbridge announces (one row each: key, name, where its value
comes from, device class, unit), one more for each measured field a family's own reading adds (its device class,
unit, state class and precision from the Measure its model declares), which of them a poll has a value for, and
the retained config documents."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nutbridge import __version__
from nutbridge.model import ChargeStage, DeviceInfo, Measure, Period, Reading, measures
from nutbridge.snapshot import Snapshot
from nutbridge.snapshot_json import measurements


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


# How Home Assistant shows a quantity of the model (Measure.quantity): its device class and suggested digits
SHOWN = {
    "power": ("power", 0),
    "voltage": ("voltage", 1),
    "current": ("current", 2),
    "temperature": ("temperature", 1),
    "charge": ("battery", 0),
    "energy": ("energy", 2),
}
# Only a lifetime counter feeds the statistics (total_increasing); a day's counter resets at midnight on the
# device's clock, so it carries no state_class (one sensor per quantity, as HA asks).
STATE_CLASSES = {Period.NOW: "measurement", Period.DAY: None, Period.LIFETIME: "total_increasing"}


def sensor(
    field: str, measure: Measure, name: str | None = None, *, precision: int | None = None, diagnostic: bool = False
) -> Entity:
    """The sensor of a measured reading field (``grid_power`` → "Grid power", power, W): a quantity HA has no
    class for is shown with its unit alone."""
    device_class, digits = SHOWN.get(measure.quantity, (None, None))
    return Entity(
        key=field,
        name=name or field.replace("_", " ").capitalize(),
        reading=field,
        device_class=device_class,
        state_class=STATE_CLASSES[measure.period],
        unit=measure.unit,
        precision=digits if precision is None else precision,
        diagnostic=diagnostic,
    )


def _shared(key: str, name: str, *, precision: int | None = None, diagnostic: bool = False) -> Entity:
    """A shared Reading field's sensor, with the name and digits people know it by."""
    return sensor(key, measures(Reading)[key], name, precision=precision, diagnostic=diagnostic)


ENTITIES: tuple[Entity, ...] = (
    _shared("pv_power", "PV power"),
    _shared("pv_voltage", "PV voltage"),
    _shared("pv_current", "PV current"),
    _shared("battery_charge", "Battery charge"),
    _shared("battery_voltage", "Battery voltage", precision=2),
    _shared("battery_current", "Battery current"),  # net: negative while discharging
    _shared("battery_temperature", "Battery temperature", diagnostic=True),
    _shared("load_power", "Load power"),
    _shared("load_voltage", "Load voltage"),
    _shared("load_current", "Load current"),
    _shared("controller_temperature", "Controller temperature", diagnostic=True),
    _shared("energy_generated_total", "Energy generated"),  # the lifetime counters feed HA's Energy dashboard
    _shared("energy_consumed_total", "Energy consumed"),
    _shared("energy_generated_today", "Energy generated today"),
    _shared("energy_consumed_today", "Energy consumed today"),
    _shared("battery_voltage_max_today", "Battery voltage max today", precision=2, diagnostic=True),
    _shared("battery_voltage_min_today", "Battery voltage min today", precision=2, diagnostic=True),
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


TAKEN = {e.key for e in ENTITIES} | {e.reading for e in ENTITIES if e.reading is not None}


def family_entities(reading: Reading) -> tuple[Entity, ...]:
    """A sensor for each measured field with a value that ``reading``'s own type adds to ENTITIES' (none for the
    base Reading). A field whose name an entity of ENTITIES already holds is left out: unique_ids stay stable."""
    return tuple(sensor(field, measure) for field, measure, _ in measurements(reading) if field not in TAKEN)


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
