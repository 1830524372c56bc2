"""Plain-text tables and short cells for the console verbs (``--json`` prints raw data).

    print(render(["NODE", "STATUS"], [["3f2a9c…", "ok"]]))
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["render", "short_id", "ago", "compact", "print_json"]


def render(columns: Sequence[str], rows: Sequence[Sequence[str]], footer: str | None = None,
           ) -> str:
    """Columns padded to their widest cell, two spaces apart; trailing spaces trimmed."""
    widths = [max([len(title)] + [len(row[i]) for row in rows])
              for i, title in enumerate(columns)]
    lines = ["  ".join(title.ljust(width) for title, width in zip(columns, widths))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    if footer is not None:
        lines.append(footer)
    return "\n".join(line.rstrip() for line in lines)


def short_id(value: str | None, length: int = 12) -> str:
    return (value or "-")[:length]


def ago(moment: float | None, now: float | None = None) -> str:
    """A past unix time as "now", "12s ago", "5m ago", "3h ago"; "-" for none."""
    if not moment:
        return "-"
    seconds = max(0.0, (time.time() if now is None else now) - moment)
    if seconds < 1.5:
        return "now"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.0f}h ago"


def compact(value: Any, width: int = 60) -> str:
    """A value as one short line of JSON (cut with an ellipsis)."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"),
                                                           sort_keys=True, default=str)
    return text if len(text) <= width else text[:width - 1] + "…"


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))
