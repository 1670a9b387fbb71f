"""Live feeds for consumers: the Hubitat line protocol, MQTT, pub/sub."""
