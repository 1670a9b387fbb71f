"""Tests of nutbridge.feeds."""
