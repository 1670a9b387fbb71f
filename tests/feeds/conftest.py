"""Fixtures the feeds' tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.mqtt import Mosquitto, mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """An anonymous mosquitto on a free loopback port."""
    with mosquitto(tmp_path, ["allow_anonymous true"]) as b:
        yield b
