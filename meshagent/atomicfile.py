"""Files that are replaced whole: a reader sees the old content or the new, never half.

``write_atomically`` writes to a temporary name in the target's directory, fsyncs it and
renames it over the target (``os.replace``, atomic on POSIX and Windows within one file
system). The temporary file is created by ``os.open`` with ``O_EXCL`` and the final
``mode`` (subject to the umask), so a private file is never readable by others, not even
between creation and a later ``chmod``. Its name starts with a dot and ends in ``.tmp``,
so globs for the real files (``*.result``, ``*.grant``) never pick it up; a stale one left
by a crash of the same process id is removed first. OSError reaches the caller.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: str | os.PathLike[str], data: bytes, *, mode: int) -> None:
    """Replace ``path`` with ``data``; the file is created with ``mode``."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
