"""The power cycle's plan (devices/tracer/cycle_plan.py), checked against shared/reference/epever-load-control.md:
its "safe set" of ordering rules (b), EPEver's 12 V sealed defaults as a real Tracer2215BN answered them ([TD]),
and the write rules (type User or lithium before voltages, User never with 0x9067 = 0, the 12 voltages in one FC10)."""

from __future__ import annotations

import pytest

from nutbridge.devices.tracer.cycle_plan import (
    BLOCK,
    RATED_CODE,
    VOLTS,
    Controller,
    CycleError,
    order_faults,
    plan_arm,
    plan_restore,
)

# [TD]: 0x9000 x15 of a real Tracer2215BN (sealed, 100 Ah, EPEver's 12 V defaults), 0x9067 = 0, 0x903D = 0, 0x906A = 1.
TD_BLOCK = (1, 100, 300, 1600, 1500, 1500, 1460, 1440, 1380, 1320, 1260, 1220, 1200, 1110, 1060)
TD = Controller(TD_BLOCK, rated_code=0, load_mode=0, manual_default=1)
OVD, CLV, OVR, EQV, BST, FLT, BRV, LVR, UVWR, UVW, LVD, DLV = range(3, 15)


def safe(b: tuple[int, ...] | list[int]) -> bool:
    """The reference's safe set, written out: OVD > OVR; OVD > CLV >= EQV >= BST >= FLT > BRV; BRV > LVR > LVD >= DLV;
    UVWR > UVW > LVD."""
    return (
        b[OVD] > b[OVR]
        and b[OVD] > b[CLV] >= b[EQV] >= b[BST] >= b[FLT] > b[BRV]
        and b[BRV] > b[LVR] > b[LVD] >= b[DLV]
        and b[UVWR] > b[UVW] > b[LVD]
    )


def test_the_defaults_keep_every_rule() -> None:
    assert safe(TD_BLOCK)
    assert order_faults(TD_BLOCK) == []


@pytest.mark.parametrize(
    ("at", "value"),
    [
        (OVR, 1600),  # OVD > OVR
        (CLV, 1600),  # OVD > CLV
        (EQV, 1510),  # CLV >= EQV
        (FLT, 1450),  # BST >= FLT
        (BRV, 1380),  # FLT > BRV
        (LVR, 1320),  # BRV > LVR
        (LVR, 1110),  # LVR > LVD
        (DLV, 1111),  # LVD >= DLV
        (UVW, 1220),  # UVWR > UVW
        (UVW, 1110),  # UVW > LVD
    ],
)
def test_each_broken_rule_is_named(at: int, value: int) -> None:
    block = list(TD_BLOCK)
    block[at] = value
    assert not safe(block)
    assert order_faults(block)


def test_equal_where_mt50_allows_it() -> None:
    """[MT50] and bkuschak's Tracer1210AN: LVD = DLV and CLV = EQV are taken."""
    block = list(TD_BLOCK)
    block[DLV], block[EQV] = block[LVD], block[CLV]
    assert order_faults(block) == []


@pytest.mark.parametrize("present", [10.9, 11.5, 11.9, 12.05, 12.4, 12.8, 12.9])
def test_armed_block_cuts_now_and_returns_at_the_return_voltage(present: float) -> None:
    plan = plan_arm(TD, present, 12, 12.8)
    after = plan.after.block
    assert safe(after)
    assert after[LVD] > present * 100  # the controller's LVD cuts at once
    assert after[LVR] == max(1280, after[LVD] + 10)  # the return voltage, or just above LVD
    assert after[LVR] < 1320  # below boost reconnect: only charging reaches it
    assert after[DLV] <= after[LVD]
    assert after[0] == 0  # User
    # The rated voltage (12 V: 1) before the type, the type before the voltages, the 12 voltages in one write.
    assert plan.writes == ((RATED_CODE, (1,)), (BLOCK, (0,)), (VOLTS, tuple(after[3:])))
    untouched = (OVD, CLV, OVR, EQV, BST, FLT, BRV)
    assert [after[i] for i in untouched] == [TD_BLOCK[i] for i in untouched]


@pytest.mark.parametrize("present", [13.0, 13.15])
def test_too_high_a_battery_is_not_armed(present: float) -> None:
    """A disconnect above 13.0 V leaves no reconnect 0.1 V above it and below the boost reconnect 13.20 V."""
    with pytest.raises(CycleError, match="boost reconnect"):
        plan_arm(TD, present, 12, 12.8)


def test_a_user_battery_needs_only_the_voltages() -> None:
    user = Controller((0, *TD_BLOCK[1:]), rated_code=1, load_mode=0, manual_default=1)
    plan = plan_arm(user, 11.9, 12, 12.8)
    assert [address for address, _ in plan.writes] == [VOLTS]


def test_24_volts_scales() -> None:
    """Double every voltage for 24 V ([LS-man], [VS-man]); the return voltage is per 12 V."""
    block24 = tuple(v * 2 if i >= 3 else v for i, v in enumerate(TD_BLOCK))
    plan = plan_arm(Controller(block24, rated_code=2, load_mode=0), 23.8, 24, 12.8)
    after = plan.after.block
    assert safe(after)
    assert after[LVD] > 2380
    assert after[LVR] == 2560
    assert order_faults(after, 2.0) == []
    assert [address for address, _ in plan.writes] == [BLOCK, VOLTS]  # 0x9067 already fixed at 24 V


@pytest.mark.parametrize("mode", [1, 2, 3])
def test_not_in_manual_mode_is_refused(mode: int) -> None:
    """The reference (c)/(f): the reconnect brings back a manual-on load; in light/timer modes only if the mode
    wants it on."""
    with pytest.raises(CycleError, match="0x903D"):
        plan_arm(Controller(TD_BLOCK, 0, mode, 1), 11.9, 12, 12.8)


def test_restore_order_is_one_the_controller_takes() -> None:
    """Voltages while the type is still User, then the type, then 0x9067 (sealed with auto is allowed; User with
    auto is not)."""
    armed = plan_arm(TD, 11.9, 12, 12.8).after
    plan = plan_restore(armed, TD)
    assert plan.writes == ((VOLTS, TD_BLOCK[3:]), (BLOCK, (1,)), (RATED_CODE, (0,)))
    assert plan_restore(TD, TD).writes == ()
