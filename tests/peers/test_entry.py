"""A device-list entry: every field a peer sends checked by name, v1's shape kept, v1's lost '+' found again."""

from __future__ import annotations

import pytest

from nutbridge.peers.entry import DeviceError, validate
from tests.helpers.peers import NOW, entry_fields


def test_a_good_entry_keeps_v1_shape() -> None:
    device = validate(entry_fields(mac="B8:27:EB:00:00:01", ip=" 2001:db8::1 "))
    assert device.as_json() == {
        "mac": "B8:27:EB:00:00:01",  # as sent, as v1 stores it
        "ip": "2001:db8::1",
        "time stamp": str(NOW),
        "name": "Solar Node",
        "tz": "America/New_York",
        "log": ["2026-12-01 10:00:00.1", "2026-11-30 09:00:00.2"],
    }
    assert list(device.as_json()) == ["mac", "ip", "time stamp", "name", "tz", "log"]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"mac": "not-a-mac"}, "mac"),
        ({"ip": "http://evil.example/x"}, "ip"),  # v1 put this straight into URLs
        ({"ip": "192.0.2.1; rm -rf /"}, "ip"),
        ({"name": "../../etc/passwd"}, "name"),  # v1 made a file path of it
        ({"name": "<script>"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"stamp": "yesterday"}, "stamp"),
        ({"tz": "Europe/../../x"}, "tz"),
        ({"log": ",".join(["2026-12-01 10:00:00"] * 300)}, "log"),
    ],
)
def test_bad_fields_are_refused_by_name(kw: dict[str, str], message: str) -> None:
    with pytest.raises(DeviceError, match=f"^{message}:"):
        validate(entry_fields(**kw))


ZONES = [("Etc/GMT 5", "Etc/GMT+5"), ("Etc/GMT-5", "Etc/GMT-5"), ("America/Port au Prince", None),
         ("Etc/GMT+5", "Etc/GMT+5"), ("GMT 0", "GMT+0")]  # fmt: skip


@pytest.mark.parametrize(("sent", "stored"), ZONES)
def test_a_zone_whose_plus_v1_lost_to_its_unencoded_form_is_taken_with_the_plus(sent: str, stored: str | None) -> None:
    """v1 builds its form body by hand: Etc/GMT+5 reaches the server as Etc/GMT 5. A space is in no zone name,
    so it is the lost '+'; anything else with a space is still refused."""
    if stored is None:
        with pytest.raises(DeviceError, match="tz"):
            validate(entry_fields(tz=sent))
    else:
        assert validate(entry_fields(tz=sent)).tz == stored
