"""The EPEver Tracer charge controllers over Modbus: the register map (registers.py), the source (source.py), the
NUT table (nut.py), the ``[source]`` section (config.py) and the registry's record (family.py)."""
