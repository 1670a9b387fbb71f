"""Tests of nutbridge.devices.enphase."""
