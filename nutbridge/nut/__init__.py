"""The NUT side: Reading → NUT variables, and the dummy-ups port file."""
