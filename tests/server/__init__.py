"""Tests of nutbridge.server."""
