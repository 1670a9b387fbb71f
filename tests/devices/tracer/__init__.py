"""Tests of nutbridge.devices.tracer."""
