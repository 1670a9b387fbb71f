"""The one exception tree of nutbridge: every exception it raises descends from NutbridgeError (a test checks
that each one defined anywhere in the package is here and under the root).

    NutbridgeError
     ├── ConfigError        bad configuration: exit status 78 (EX_CONFIG)
     ├── SourceError        the device could not be read this time
     │    ├── ProtocolError the device answered, but with an error or nonsense
     │    │    └── Refused  a definite answer (HTTP 4xx): asking again within the poll gets the same one
     │    ├── devices/http.py RateLimited           HTTP 429: not asked again before its Retry-After
     │    └── devices/enphase/token.py TokenError   no usable gateway token
     │         └── devices/enphase/token.py TokenRateLimited  Enphase's cloud said 429
     ├── PortFileError      the dummy-ups port file could not be read, written or renamed
 ├── nut/driver_socket.py DriverSocketError     the NUT driver socket could not be set up
 ├── nut/sock_wire.py WireError                 a driver-socket line that is not parseconf text, or too long
     ├── datalog/dayfiles.py DataLogError           the data log could not be written or read
     ├── peers/entry.py DeviceError                 a device entry is invalid, or the list is unusable
     │    ├── peers/devices.py DeviceListError      the list cannot be read or written (this node's trouble)
     │    └── peers/entry.py DeviceRefused          a valid entry the list does not take
     │         └── peers/devices.py TooManyChanges  the sender has used its changes for the hour
     ├── peers/client.py PeerError                  a peer could not be reached, or answered too much
     │    ├── peers/client.py RateLimited           a peer said 429
     │    └── peers/client.py AddressRefused        the address policy refuses the peer: no request made
     ├── setup_steps.py SetupError                  `nutbridge setup` (and migrate) cannot go on
     ├── capture/take.py CaptureError               the source's device family has no capture hook
     ├── v1node.py V1Error                          a Solar Protocol v1 node's layout is not as expected
     ├── driver_cmd.py UsageError                   nutbridge-driver's flags refused (status 1, as NUT's drivers)
     ├── devices/tracer/cycle_plan.py CycleError    the power cycle cannot be armed or restored as asked
     │   signals that never leave their module (each caught there and turned into an answer or a retry):
     ├── server/api.py Busy                         the worker threads' line is full (HTTP 503)
     ├── server/pubsub_wire.py Refused              a frame or body the hub cannot take
     │    └── server/pubsub_wire.py NoEvent         a publication without an event
     ├── server/pubsub.py TooMany                   a subscriber over MAX_EVENTS
     ├── feeds/lineprotocol.py NoAnswer             a query that cannot be answered now
     ├── feeds/linesocket.py SlowClient             a client that leaves its replies unread
     ├── devices/enphase/token.py _RateLimited      a 429 inside the retries, before TokenRateLimited
     └── devices/enphase/token.py _Transient        a failure worth retrying within the call

Outside the tree on purpose: ``early_stop.EarlyStop`` (a BaseException, as KeyboardInterrupt, so no
``except Exception`` stops it). Programming errors stay built-in (TypeError, AssertionError...).

Library errors (pymodbus, httpx, OSError) are translated at the boundary of the module that calls the
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
