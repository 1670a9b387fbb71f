"""A simulated EPEver Tracer: a real pymodbus server with the Tracer's register map and strictness.

``python -m nutbridge.simulator --listen 127.0.0.1:5020`` runs it standalone; ``nutbridge --simulate``
runs it in-process. Either way nutbridge reads it through the real Modbus client.
"""
