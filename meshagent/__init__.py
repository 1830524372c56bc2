"""meshagent: a peer-to-peer agent for managing computers that move."""

from meshagent._version import __version__

__all__ = ["__version__"]
