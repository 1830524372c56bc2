"""Time on the console: durations the verbs read, moments they print.

    parse_duration("90")  -> 90.0      parse_duration("15m") -> 900.0
    parse_duration("1.5h") -> 5400.0   utc_time(0) -> "1970-01-01T00:00:00Z"
"""

from __future__ import annotations

import argparse
import re
import time

__all__ = ["parse_duration", "utc_time"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds from a positive number with an optional unit s, m, h or d ("90", "15m",
    "30d"); an argparse type, so a bad one is a usage error naming the option."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 90s, 15m, 1h, 30d)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def utc_time(timestamp: float) -> str:
    """A unix time as ISO 8601 UTC to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
