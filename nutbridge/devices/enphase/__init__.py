"""The Enphase IQ Gateway (Envoy): the source (source.py), its token cache (token.py), the reading with the meters
(model.py), the NUT table (nut.py), the ``[source]`` section (config.py), TEST mode's fixture gateway (testmode.py,
its answers in fixtures/) and the registry's record (family.py)."""
