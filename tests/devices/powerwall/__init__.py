"""Tests of nutbridge.devices.powerwall."""
