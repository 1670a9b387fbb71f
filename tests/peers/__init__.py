"""Tests of nutbridge.peers."""
