"""The solar peer network: the device list, this node's identity, the announcer and the point-of-entry
election."""
