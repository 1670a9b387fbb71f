"""The port file's text: merge rules, values cleaned for dummy-ups' parser, comments, the ALARM instruction, the
lines a person wrote told from nutbridge's own."""

from __future__ import annotations

from nutbridge.nut.portfile_text import format_value, hand_lines, hand_set, merge, parse_values

HAND = """\
# my UPS notes
battery.charge.low: 25

nut.mfr: kept as is
ups.status: OB
\x01\x02 junk that is no variable
TIMER 5
some.unknown: value   with  spaces
"""


def test_merge_updates_in_place_and_keeps_everything_else() -> None:
    out = merge(HAND, {"ups.status": "OL CHRG", "battery.charge": "80"})
    lines = out.splitlines()
    assert lines[:4] == ["# my UPS notes", "battery.charge.low: 25", "", "nut.mfr: kept as is"]
    assert lines[4] == "ups.status: OL CHRG"  # updated where it stood
    assert lines[5:8] == ["\x01\x02 junk that is no variable", "TIMER 5", "some.unknown: value   with  spaces"]
    assert lines[8] == "battery.charge: 80"  # new variables go at the end


def test_delete_is_empty_quotes_never_a_bare_colon() -> None:
    out = merge("battery.temperature: 25.0\n", {"battery.temperature": None, "ups.alarm": None})
    assert out == 'battery.temperature: ""\n'  # deleted where it was; not added where it wasn't
    assert format_value("") == '""'
    assert not any(line.rstrip().endswith(":") for line in merge(HAND, {"x.y": ""}).splitlines())


def test_values_are_cleaned_for_the_dummy_ups_parser() -> None:
    assert format_value('a # b "c"\n d') == "a b c d"
    assert len(format_value("x" * 500)) == 127


def test_parse_values_reads_what_dummy_ups_reads() -> None:
    values = parse_values(HAND + 'ups.alarm: ""\n')
    assert values["battery.charge.low"] == "25"
    assert values["ups.alarm"] == ""
    assert "TIMER 5" not in values


def test_trailing_comments_are_read_as_dummy_ups_reads_them() -> None:
    assert parse_values('ups.model: "A # B" # note\nbattery.capacity: 100 # nutbridge\n') == {
        "ups.model": "A # B",
        "battery.capacity": "100",
    }
    assert hand_set("battery.capacity: 100 # nutbridge\nups.model: X\n", ["battery.capacity", "ups.model"]) == {
        "ups.model": "X"
    }


def test_alarm_instruction_is_set_and_cleared_in_one_line() -> None:
    text = merge("# hand\nALARM old text\n", {"ALARM": "load short circuit"})
    assert text == "# hand\nALARM load short circuit\n"
    assert merge(text, {"ALARM": None}) == "# hand\nALARM\n"
    assert merge("ups.status: OL\n", {"ALARM": None}) == "ups.status: OL\nALARM\n"
    assert merge("ALARM a\nALARM b\n", {"ALARM": "c"}) == "ALARM c\n"
    assert merge("ALARM by hand\n", {"ups.status": "OL"}) == "ALARM by hand\nups.status: OL\n"  # not ours: kept


def test_hand_lines_are_all_but_nutbridge_s_own() -> None:
    generated = {"ups.status": "OL", "battery.charge": "80", "battery.capacity": "100", "ALARM": None}
    text = "# note\nups.status: OB\nbattery.capacity: 100 # nutbridge\nbattery.charge.low: 25\nALARM old\njunk \xff\r\n"
    assert hand_lines(text, generated) == "# note\nbattery.charge.low: 25\njunk \xff\r\n"
    assert hand_lines(text, {"ups.status": "OL"}) == "# note\nbattery.charge.low: 25\nALARM old\njunk \xff\r\n"
    merged = merge(text, generated, marked=("battery.capacity",))
    assert hand_lines(merged, generated) == hand_lines(text, generated)  # a write leaves them as they were
