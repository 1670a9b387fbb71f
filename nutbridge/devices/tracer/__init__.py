"""The EPEver Tracer charge controllers over Modbus: the register map as data (registers.py, in
devices/modbus_map.py's language), the source (source.py, over devices/modbus_link.py), the
NUT table (nut.py), the ``[source]`` section (config.py) and the registry's record (family.py)."""
