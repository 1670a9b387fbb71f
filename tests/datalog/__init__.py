"""Tests of nutbridge.datalog."""
