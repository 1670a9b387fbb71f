"""Tests of nutbridge.capture: the command run as a user runs it, against every family."""
