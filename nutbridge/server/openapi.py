"""The OpenAPI 3.0 document of the JSON API (GET /api/openapi.json): the schemas, built from the Reading
dataclasses (the base one and each family's own) and the data log's header so they cannot drift, and one
operation per route."""

from __future__ import annotations

import dataclasses
from typing import Any

from nutbridge.datalog.format import FIELDS, HEADER
from nutbridge.devices import registry
from nutbridge.devices.enphase.model import Meter  # its meters are objects in the JSON view
from nutbridge.model import ChargeStage, Reading
from nutbridge.node import KEYS
from nutbridge.snapshot import Comms

# The bounds of GET /api/readings, which its handler enforces and this document publishes
MAX_DAYS = 31
MIN_STEP, MAX_STEP = 0.001, 86400


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def obj(properties: dict[str, Any], *, optional: tuple[str, ...] = (), closed: bool = True) -> dict[str, Any]:
    """A JSON object schema: every property required but ``optional``; ``closed``: no other keys."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [k for k in properties if k not in optional]
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


TEXT = {"type": "string"}


REASON = {"type": "string", "minLength": 1}


# A Reading field's type (model.py's annotation) → its JSON schema; a new field of a new type fails here, at import
METER = obj({f.name: {"type": "number"} for f in dataclasses.fields(Meter)})
READING_TYPES: dict[str, dict[str, Any]] = {
    "float": {"type": "number"},
    "float | None": nullable({"type": "number"}),
    "int | None": nullable({"type": "integer"}),
    "bool": {"type": "boolean"},
    "bool | None": nullable({"type": "boolean"}),
    "str | None": nullable(TEXT),
    "tuple[str, ...]": {"type": "array", "items": TEXT},
    "ChargeStage | None": nullable({"type": "string", "enum": [s.value for s in ChargeStage]}),
    "Meter | None": nullable(METER),
    "tuple[Meter, ...] | None": nullable({"type": "array", "items": METER}),
}


def family_readings() -> dict[str, type[Reading]]:
    """Each registered family whose reading adds fields to Reading's, by ``[source] kind``: the JSON view shows
    them, so they are optional properties here (only that family's readings have them)."""
    return {kind: family.reading for kind, family in registry.families().items() if family.reading is not Reading}


def family_fields() -> dict[str, dict[str, Any]]:
    """The schema of every field a family's reading adds, naming the families that have it."""
    base = {f.name for f in dataclasses.fields(Reading)}
    schemas: dict[str, dict[str, Any]] = {}
    families: dict[str, list[str]] = {}
    for family, kind in family_readings().items():
        for f in dataclasses.fields(kind):
            if f.name in base:
                continue
            schema = READING_TYPES[str(f.type)]
            if schemas.setdefault(f.name, schema) != schema:
                raise TypeError(f"{f.name}: two families' readings give it two types")
            families.setdefault(f.name, []).append(family)
    return {
        name: {**schema, "description": f"[source] kind {' and '.join(families[name])} only"}
        for name, schema in schemas.items()
    }


FAMILY_FIELDS = family_fields()
READING = obj(
    {**{f.name: READING_TYPES[str(f.type)] for f in dataclasses.fields(Reading)}, **FAMILY_FIELDS},
    optional=tuple(FAMILY_FIELDS),
)


DEVICE = obj(
    {
        "mac": {"type": "string", "pattern": "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"},
        "ip": TEXT,
        "time stamp": TEXT,
        "name": TEXT,
        "tz": TEXT,
        "log": {"type": "array", "items": TEXT},
    }
)


COLUMNS = [c.value for c in FIELDS]


# What POST /api/devices takes. It is no stricter than the server (a request it refuses breaks this schema), so
# where JSON Schema's patterns (ECMA-262: \w, \d and $ are ASCII-only and end-only) cannot say what Python's do,
# the description says it. Other keys are ignored.
DEVICE_IN = obj(
    {
        "mac": {
            "type": "string",
            "pattern": "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$",
            "description": "the node's MAC address; stored as sent, one node whatever its case",
        },
        "ip": {
            "anyOf": [
                {"type": "string", "format": "ipv4"},
                {"type": "string", "format": "ipv6"},
                {"type": "string", "pattern": r"^(\[[0-9A-Fa-f:.]+\]|[0-9.]+):[0-9]{1,5}$"},
            ],
            "description": "an IPv4 or IPv6 address, with an optional port (1-65535): 192.0.2.7:8080, "
            "[2001:db8::7]:8080; no host names",
        },
        "stamp": {
            "anyOf": [
                {"type": "number"},
                {
                    "type": "string",
                    "maxLength": 32,
                    "pattern": r"^[+-]?([0-9_]+\.?[0-9_]*|\.[0-9_]+)([eE][+-]?[0-9_]+)?$",
                },
            ],
            "description": "when the node sent this: seconds since the epoch, a finite number",
        },
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "description": "1-64 letters or digits of any script, spaces and .,()-",
        },
        "tz": {
            "type": "string",
            "maxLength": 100,
            "pattern": "^([A-Za-z0-9_+-]{1,32}(/[A-Za-z0-9_+-]{1,32}){0,2})?$",
            "description": "a time-zone name such as America/New_York, or empty",
        },
        "log": {
            "anyOf": [
                {"type": "array", "maxItems": 256, "items": {"type": "string", "maxLength": 40}},
                {"type": "string"},
            ],
            "description": "at most 256 timestamps of letters, digits and :.+- (a list, or a comma-separated string)",
        },
    },
    optional=("tz", "log"),
    closed=False,
)


SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": obj({"error": REASON}),
    "Status": obj(
        {
            "comms": {"type": "string", "enum": [c.value for c in Comms]},
            "fresh": {"type": "boolean"},
            "time": {"type": "string", "format": "date-time"},
            "last_good": {"type": "string", "format": "date-time"},
            "age": {"type": "number", "description": "seconds since the last good poll"},
            "error": nullable(TEXT),
            "variables": {"type": "object", "additionalProperties": nullable(TEXT)},
            "reading": nullable(READING),  # inline: OpenAPI 3.0 ignores "nullable" beside a $ref
        }
    ),
    "Healthy": obj({"status": {"type": "string", "enum": ["ok"]}}),
    "Unhealthy": obj({"status": {"type": "string", "enum": ["unhealthy"]}, "reason": REASON}),
    "Readings": obj(
        {
            "fields": {"type": "array", "items": {"type": "string", "enum": list(HEADER)}, "minItems": 1},
            "rows": {"type": "array", "items": {"type": "array", "items": TEXT}},
            "columns": {
                "type": "array",
                "description": "format=columns: Unix seconds, then one column of numbers (or null) per field",
                "items": {"type": "array", "items": nullable({"type": "number"})},
            },
        },
        optional=("rows", "columns"),
    ),
    "Device": DEVICE,
    "Devices": {"type": "array", "items": DEVICE},
    "DeviceIn": DEVICE_IN,
    "System": obj(
        {
            # as local.json or [node] holds them (a v1 file may hold numbers as text): any JSON value
            **{k: {"description": f"local.json's {k}; null when unset"} for k in KEYS},
            "wattage-scaler": nullable(
                {"type": "number", "description": "50 W / pvWatts; null without a usable pvWatts"}
            ),
        }
    ),
    "OpenApi": {"type": "object", "required": ["openapi", "info", "paths"]},
    "Stats": obj(
        {
            "uptime": {"type": "number"},
            "since": {"type": "number", "description": "seconds since the start or the last /stats/clear"},
            "polls": {"type": "integer"},
            "failures": {"type": "integer"},
            "requests": {"type": "integer"},
            "cache_hits": {"type": "integer"},
            "cache_misses": {"type": "integer"},
            "comms": nullable({"type": "string", "enum": [c.value for c in Comms]}),
            "last_error": nullable(TEXT),
            "last_poll_age": nullable({"type": "number"}),
            "subscribers": nullable({"type": "integer"}),
        }
    ),
    "Cleared": obj({"cleared": {"type": "boolean"}}),
    "Election": obj(
        {
            "mac": TEXT,
            "point_of_entry": {"type": "boolean", "description": "whether this node won the last round"},
            "since": nullable({"type": "number", "description": "when it became point of entry (epoch s)"}),
            "elected_round": nullable({"type": "integer"}),
            "holder": nullable({**TEXT, "description": "the MAC of the node this one sees as point of entry"}),
            "scaled_wattage": nullable({"type": "number", "description": "PV power scaled to a 50 W panel"}),
            "battery_charge": nullable({"type": "number", "description": "percent"}),
            "reading_age": nullable({"type": "number", "description": "seconds since this node's newest reading"}),
            "rounds": {"type": "integer"},
        }
    ),
}


DESCRIPTIONS = {200: "OK", 400: "a bad query or body, with its reason", 401: "no or a wrong network key",
                413: "a body over 64 KiB", 422: "a valid entry this node does not take (address policy, caps)",
                429: "too many changes from this sender within the hour (Retry-After)",
                403: "refused: a request from another origin, or no [control] secret is set",
                503: "not available now, with its reason"}  # fmt: skip


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def op(
    summary: str,
    responses: dict[int, str],
    *,
    params: tuple[dict[str, Any], ...] = (),
    body: str | None = None,
    secure: bool = False,
    secret: bool = False,
) -> dict[str, Any]:
    """One OpenAPI operation: its summary, parameters, body and the schema of each status code it answers;
    ``secure``: behind the network key, ``secret``: behind the operator's [control] secret."""
    doc: dict[str, Any] = {
        "summary": summary,
        "responses": {
            str(code): {"description": DESCRIPTIONS[code], "content": {"application/json": {"schema": ref(name)}}}
            for code, name in responses.items()
        },
    }
    if params:
        doc["parameters"] = list(params)
    if body:
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(body)}}}
        # refused by the body limit before the route sees it, as aiohttp's plain text
        doc["responses"]["413"] = {"description": DESCRIPTIONS[413], "content": {"text/plain": {"schema": TEXT}}}
    if secure or secret:
        doc["security"] = [{"controlSecret": []}] if secret else [{"bearer": []}, {"networkKey": []}]
        doc["responses"]["401"] = {
            "description": "no or a wrong [control] secret" if secret else DESCRIPTIONS[401],
            "content": {"application/json": {"schema": ref("Error")}},
        }
    return doc


def query(name: str, schema: dict[str, Any], description: str, **style: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description} | style


READINGS = op(
    "History from the data log",
    {200: "Readings", 400: "Error", 503: "Error"},
    params=(
        query("from", {"type": "string", "format": "date"}, "first local date, YYYY-MM-DD (default today)"),
        query("to", {"type": "string", "format": "date"}, f"last local date (default today); at most {MAX_DAYS} days"),
        query(
            "days",
            {"type": "integer", "minimum": 1, "maximum": MAX_DAYS},
            "the last N days, today included (instead of from/to: not with them)",
        ),
        query(
            "fields",
            {"type": "array", "items": {"type": "string", "enum": COLUMNS}, "minItems": 1},
            "column names of the day files, comma-separated (default all)",
            style="form",
            explode=False,
        ),
        query(
            "step",
            {"anyOf": [{"type": "number", "enum": [0]}, {"type": "number", "minimum": MIN_STEP, "maximum": MAX_STEP}]},
            "keep the first row of each step seconds (0, the default: every row)",
        ),
        query(
            "format",
            {"type": "string", "enum": ["rows", "columns"]},
            "rows (the default: the day files' text) or columns (numbers, times in Unix seconds, as charts take them)",
        ),
    ),
)


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "nutbridge API", "version": "1"},
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "the network key"},
            "networkKey": {"type": "apiKey", "in": "header", "name": "X-Network-Key", "description": "the network key"},
            "controlSecret": {"type": "http", "scheme": "bearer", "description": "the operator's [control] secret"},
        },
        "schemas": SCHEMAS,
    },
    "paths": {
        "/api/status": {"get": op("NUT variables, reading, age and comms state", {200: "Status", 503: "Error"})},
        "/health": {
            "get": op("200 when fresh, 503 with a reason when stale or in nocomms", {200: "Healthy", 503: "Unhealthy"})
        },
        "/api/readings": {"get": READINGS},
        "/api/charge-controller": {"get": READINGS},
        "/api/devices": {
            "get": op("The device list", {200: "Devices", 503: "Error"}, secure=True),
            "post": op(
                "Add or update a device",
                {200: "Devices", 400: "Error", 422: "Error", 429: "Error", 503: "Error"},
                body="DeviceIn",
                secure=True,
            ),
        },
        "/api/system": {
            "get": op("This node's identity (local.json's identity keys only) and wattage scaler", {200: "System"})
        },
        "/api/openapi.json": {"get": op("This document", {200: "OpenApi"})},
        "/metrics": {
            "get": {
                "summary": "Prometheus' text format: readings, NUT variables, polls, comms, requests",
                "responses": {"200": {"description": "OK", "content": {"text/plain": {"schema": TEXT}}}},
            }
        },
        "/stats": {"get": op("Counters since the start or the last /stats/clear (pyPowerwall's)", {200: "Stats"})},
        "/stats/clear": {
            "post": op(
                "Start the /stats counters again ([control] secret, or a form's token=; same origin only)",
                {200: "Cleared", 403: "Error"},
                secret=True,
            )
        },
    },
}


OPENAPI_ELECTING: dict[str, Any] = {
    **OPENAPI,
    "paths": {
        **OPENAPI["paths"],
        "/api/election": {
            "get": op("This node's standing in the point-of-entry election ([peers] election)", {200: "Election"})
        },
    },
}
