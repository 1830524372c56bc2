"""Structured logging: one event name plus fields, on top of the stdlib ``logging``.

    log = get_logger(__name__)
    log.event("frame_rejected", reason="oversize", peer="10.0.0.7:7946")
    log.warn_limited("datagram_dropped", key=addr, reason="bad_tag")

``warn_limited`` is for input an attacker controls: at most one line per
(event, key) per ``interval`` seconds, with the number suppressed in between, so a flood
cannot fill the disk. Counters of dropped input are kept by the callers, not here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["EventLogger", "get_logger"]


def _format_fields(fields: dict[str, Any]) -> str:
    return " ".join(f"{key}={value!r}" if isinstance(value, str) and " " in value
                    else f"{key}={value}" for key, value in fields.items())


class EventLogger:
    """A ``logging.Logger`` wrapper that writes ``event key=value ...`` lines."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[tuple[str, Any], tuple[float, int]] = {}

    def event(self, name: str, level: int = logging.INFO, **fields: Any) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(level, "%s %s", name, _format_fields(fields),
                            extra={"event": name, "fields": fields})

    def debug(self, name: str, **fields: Any) -> None:
        self.event(name, logging.DEBUG, **fields)

    def warning(self, name: str, **fields: Any) -> None:
        self.event(name, logging.WARNING, **fields)

    def error(self, name: str, **fields: Any) -> None:
        self.event(name, logging.ERROR, **fields)

    def warn_limited(self, name: str, key: Any = None, **fields: Any) -> bool:
        """Log a warning at most once per ``interval`` for (name, key); True if written."""
        now = time.monotonic()
        last, suppressed = self._last.get((name, key), (float("-inf"), 0))
        if now - last < self.interval:
            self._last[(name, key)] = (last, suppressed + 1)
            return False
        if len(self._last) > 4096:  # bounded: forget the oldest keys
            self._last.clear()
        self._last[(name, key)] = (now, 0)
        if suppressed:
            fields["suppressed"] = suppressed
        self.event(name, logging.WARNING, **fields)
        return True


def get_logger(name: str) -> EventLogger:
    return EventLogger(logging.getLogger(name))
