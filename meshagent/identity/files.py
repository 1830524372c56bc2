"""Writing and reading identity files.

Files are replaced whole (``meshagent.atomicfile``): private keys are created owner-only
(0600), so no other user can open one even for a moment; public documents (trust,
certificates, revocations) get 0644.
Every file is one canonical msgpack map with a ``type`` key naming what it holds.
"""

from __future__ import annotations

import os
from typing import Any

from meshagent import codec
from meshagent.atomicfile import write_atomically
from meshagent.errors import DecodeError
from meshagent.identity.errors import IdentityFileError

__all__ = ["write_document", "read_document", "PRIVATE_MODE", "PUBLIC_MODE"]

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
MAX_FILE_BYTES = 1 << 20


def write_document(path: str | os.PathLike[str], doc_type: str, fields: dict[str, Any],
                   *, private: bool) -> None:
    """Atomically write ``{"type": doc_type, **fields}`` to ``path``."""
    write_atomically(path, codec.pack({"type": doc_type, **fields}),
                     mode=PRIVATE_MODE if private else PUBLIC_MODE)


def read_document(path: str | os.PathLike[str], doc_type: str, *,
                  private: bool = False) -> dict[str, Any]:
    """Read a file written by ``write_document``; raise IdentityFileError otherwise.

    A ``private`` file that other users may read or write is refused, as ssh refuses such
    keys: the key may already be stolen, and the operator should know (POSIX only; on
    Windows the mode bits do not describe the ACL).
    """
    try:
        with open(path, "rb") as handle:
            if private and os.name == "posix" and os.fstat(handle.fileno()).st_mode & 0o077:
                raise IdentityFileError(f"{path} is accessible to other users; "
                                        f"chmod 600 it (and consider the key exposed)")
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise IdentityFileError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        doc = codec.unpack(data, MAX_FILE_BYTES)
    except DecodeError as exc:
        raise IdentityFileError(f"{path} is not a {doc_type} file: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("type") != doc_type:
        raise IdentityFileError(f"{path} is not a {doc_type} file")
    return doc
