"""Tests of nutbridge.devices: the registry, the shared layers, and one folder per family."""
