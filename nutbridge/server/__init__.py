"""The sidecar: an aiohttp application in the monitor's event loop, answering from the data log and the snapshot."""
