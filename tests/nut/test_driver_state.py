"""What the driver publishes: only changes per poll, and the dump in dstate.c's order (drivers/dstate.c
``sock_arg`` and ``st_tree_dump_conn``, NUT 2.8.0)."""

from __future__ import annotations

from nutbridge.nut.driver_state import DriverState, Flag, Meta, writable


def test_a_fresh_driver_dumps_stale_then_its_tree_sorted_without_case_then_its_commands() -> None:
    state = DriverState(static={"driver.name": "nutbridge", "Driver.Version": "1"}, commands=["load.on", "Load.off"])
    state.apply({"ups.status": "OL", "battery.charge": "80"})
    assert state.dump() == [
        "DATASTALE",  # dstate.c starts stale and says so first
        'SETINFO battery.charge "80"',
        'SETINFO driver.name "nutbridge"',
        'SETINFO Driver.Version "1"',
        'SETINFO ups.status "OL"',
        "ADDCMD Load.off",
        "ADDCMD load.on",
        "DUMPDONE",
    ]
    assert state.mark_ok() == ["DATAOK"]
    assert state.dump()[-2:] == ["DATAOK", "DUMPDONE"]
    assert "DATASTALE" not in state.dump()


def test_apply_says_only_what_changed() -> None:
    state = DriverState()
    assert state.apply({"ups.status": "OB LB", "battery.charge": "9"}) == [
        'SETINFO ups.status "OB LB"',
        'SETINFO battery.charge "9"',
    ]
    assert state.apply({"ups.status": "OB LB", "battery.charge": "9"}) == []
    assert state.apply({"battery.charge": "8", "ups.alarm": None}) == ['SETINFO battery.charge "8"']
    assert state.apply({"battery.charge": None}) == ["DELINFO battery.charge"]
    assert state.apply({"battery.charge": None}) == []


def test_static_variables_are_not_changed_by_a_poll() -> None:
    state = DriverState(static={"driver.name": "nutbridge"})
    assert state.apply({"driver.name": "other", "driver.name.x": "y"}) == ['SETINFO driver.name.x "y"']
    assert state.apply({"driver.name": None}) == []
    assert state.values["driver.name"] == "nutbridge"


def test_stale_and_ok_are_said_once_each() -> None:
    state = DriverState()
    assert state.mark_stale() == []  # already stale
    assert state.mark_ok() == ["DATAOK"]
    assert state.mark_ok() == []
    assert state.mark_stale() == ["DATASTALE"]
    assert state.mark_stale() == []


def test_a_settable_variable_gets_its_flags_after_its_value_as_dstate_sends_them() -> None:
    state = DriverState(
        settable=["battery.charge.low", "ups.id"],
        meta={"input.transfer.low": Meta(Flag.RW, enums=("95", "98"), ranges=((95, 100),))},
    )
    assert state.apply({"battery.charge.low": "20", "ups.id": "Data room", "input.transfer.low": "95"}) == [
        'SETINFO battery.charge.low "20"',
        "SETFLAGS battery.charge.low RW NUMBER",
        'SETINFO ups.id "Data room"',
        "SETAUX ups.id 255",
        "SETFLAGS ups.id RW STRING",
        'SETINFO input.transfer.low "95"',
        'ADDENUM input.transfer.low "95"',
        'ADDENUM input.transfer.low "98"',
        "ADDRANGE input.transfer.low 95 100",
        "SETFLAGS input.transfer.low RW",
    ]
    assert state.apply({"battery.charge.low": "25"}) == ['SETINFO battery.charge.low "25"']  # flags once
    assert state.dump(only="battery.charge.low") == [  # DUMPVALUE's answer
        "DATASTALE",
        'SETINFO battery.charge.low "25"',
        "SETFLAGS battery.charge.low RW NUMBER",
        "DUMPDONE",
    ]


def test_writable_is_a_number_or_a_string_upsd_can_bound() -> None:
    assert writable("20") == Meta(Flag.RW | Flag.NUMBER)
    assert writable("abc") == Meta(Flag.RW | Flag.STRING, aux=255)


def test_values_are_escaped_and_cut_as_dstate_keeps_them() -> None:
    state = DriverState()
    assert state.apply({"ups.id": 'a "b" #c'}) == ['SETINFO ups.id "a \\"b\\" \\#c"']
    state.apply({"ups.id": "x" * 300})
    assert state.values["ups.id"] == "x" * 255
