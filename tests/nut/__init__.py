"""Tests of nutbridge.nut."""
