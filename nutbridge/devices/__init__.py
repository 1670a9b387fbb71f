"""Device families: each turns its device's answers into a Reading (see registry.py for the list)."""
