"""The web service's TLS certificate: self-signed, made at ``server init``, pinned by hash.

As MeshCentral agents do, leaders and ``meshctl`` do not trust a CA: they pin the
SHA-256 of the service certificate's DER bytes (``cert_sha256``), given to them at
enrolment (``meshagent server init`` prints it). The key pair and certificate come from
the ``openssl`` command (``meshagent.selfsigned``); ECDSA P-256, ten years.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Sequence
from pathlib import Path

from meshagent.errors import ConfigError
from meshagent.selfsigned import cert_sha256, write_self_signed

__all__ = ["CERT_FILE", "KEY_FILE", "cert_sha256", "make_self_signed", "server_ssl_context",
           "pin_from_text"]

CERT_FILE = "server-cert.pem"
KEY_FILE = "server-key.pem"
VALID_DAYS = 3650


def make_self_signed(directory: Path, names: Sequence[str]) -> bytes:
    """Write ``server-key.pem`` (0600) and ``server-cert.pem`` for ``names`` (DNS names or
    IP addresses, the first is the subject); returns the certificate's SHA-256 pin."""
    cert = directory / CERT_FILE
    write_self_signed(directory / KEY_FILE, cert, names[0], alt_names=names,
                      valid_days=VALID_DAYS)
    return cert_sha256(cert)


def server_ssl_context(directory: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(directory / CERT_FILE, directory / KEY_FILE)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{directory}: cannot load the server certificate: {exc}") from exc
    return context


def pin_from_text(text: str) -> bytes:
    """A pin as printed (hex, colons allowed); ConfigError unless it is 32 bytes."""
    try:
        pin = bytes.fromhex(text.replace(":", "").strip())
    except ValueError as exc:
        raise ConfigError(f"certificate pin {text!r} is not hex") from exc
    if len(pin) != hashlib.sha256().digest_size:
        raise ConfigError("certificate pin must be a SHA-256 (64 hex digits)")
    return pin
