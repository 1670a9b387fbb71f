"""Tests of nutbridge.sources."""
