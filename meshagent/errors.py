"""The root of every error meshagent raises on purpose.

Each module defines its own subclasses next to the code that raises them
(``FrameError`` in ``core``, ``HandshakeError`` in ``handshake`` ...). Callers that
only need "the input was bad, it was logged, nothing was lost" catch ``MeshError``.
"""


class MeshError(Exception):
    """Base class of all typed meshagent errors."""


class DecodeError(MeshError):
    """Bytes from outside (network, disk, another process) do not parse."""


class ConfigError(MeshError):
    """A configuration file or option is invalid; the message names the key."""
