"""nutbridge: make solar charge controllers and batteries look like a UPS to Network UPS Tools."""

__all__ = ["__version__"]

__version__ = "0.1.0"
