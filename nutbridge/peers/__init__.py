"""The solar peer network: the device list, and (to come) the announcer and the point-of-entry election."""
