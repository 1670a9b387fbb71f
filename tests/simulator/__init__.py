"""Tests of nutbridge.simulator."""
