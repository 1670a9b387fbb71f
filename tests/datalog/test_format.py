"""The data log's format: v1's header, in Column order, and a Reading as the row v1 clients parse."""

from __future__ import annotations

import datetime as dt
import time

from nutbridge.datalog.format import HEADER, Column, encode
from nutbridge.model import Reading
from tests.helpers.datalog import reading
from tests.helpers.days import HEADER as V1_HEADER


def test_header_and_row_are_what_v1_clients_parse() -> None:
    assert ",".join(HEADER) == V1_HEADER
    assert list(Column) == V1_HEADER.split(",")  # the enumeration is the file's order
    cells = encode(reading(dt.datetime(2021, 2, 24, 7, 40, 12, 694530)))
    assert cells == [
        "2021-02-24 07:40:12.694530",  # naive local time, microseconds
        "13.35",
        "0.08",
        "700.25",  # the whole watts in L ...
        "0.0",  # ... and 0 in H
        "12.15",
        "0.09",
        "1.09",  # net battery power, V x I
        "0.0",
        "12.15",
        "0.18",  # the load registers, not the undocumented gap
        "2.18",
        "0.38",  # the 0-1 fraction runner.py expects
    ]
    on_the_second = encode(reading(dt.datetime(2021, 2, 24, 7, 40, 12)))[0]
    assert on_the_second == "2021-02-24 07:40:12.000000"  # str(datetime) would drop the microseconds here


def test_columns_a_source_cannot_fill_are_empty() -> None:
    bare = Reading(time=time.time(), battery_charge=55.0)
    cells = encode(bare)
    assert len(cells) == len(HEADER) and cells[-1] == "0.55"
    assert cells[1:-1] == [""] * (len(HEADER) - 2)
