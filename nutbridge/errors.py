"""The one exception tree of nutbridge.

    NutbridgeError
     ├── ConfigError        bad configuration: exit status 78 (EX_CONFIG)
     ├── SourceError        the device could not be read this time
     │    └── ProtocolError the device answered, but with an error or nonsense
     │         └── Refused  a definite answer (HTTP 4xx): asking again within the poll gets the same one
     └── PortFileError      the dummy-ups port file could not be read, written or renamed

Library errors (pymodbus, OSError) are translated at the boundary of the module that calls the
library, chaining the original with ``raise ... from exc``.
"""


class NutbridgeError(Exception):
    """Root of every error nutbridge raises on purpose."""


class ConfigError(NutbridgeError):
    """The configuration is invalid; the message names the file, the key and what is allowed."""


class SourceError(NutbridgeError):
    """The device could not be reached or did not answer in time."""


class ProtocolError(SourceError):
    """The device answered, but with an exception reply or values that make no sense."""


class Refused(ProtocolError):
    """The device gave a definite answer (an HTTP 4xx such as 404: the firmware has no such endpoint); the monitor
    does not ask again within the poll, as the answer would be the same."""


class PortFileError(NutbridgeError):
    """The port file could not be read, replaced or renamed; the previous file is left intact."""
