"""The Tesla Powerwall through a pyPowerwall proxy: the source (source.py), the reading and the installation
(model.py), the NUT table (nut.py), the ``[source]`` section (config.py) and the registry's record (family.py)."""
