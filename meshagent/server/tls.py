"""The web service's TLS certificate: self-signed, made at ``server init``, pinned by hash.

As MeshCentral agents do, leaders and ``meshctl`` do not trust a CA: they pin the
SHA-256 of the service certificate's DER bytes (``cert_sha256``), given to them at
enrolment (``meshagent server init`` prints it). The key pair and certificate come from
the ``openssl`` command (no extra Python dependency); ECDSA P-256, ten years.
"""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
from collections.abc import Sequence
from pathlib import Path

from meshagent.errors import ConfigError

__all__ = ["CERT_FILE", "KEY_FILE", "cert_sha256", "make_self_signed", "server_ssl_context",
           "pin_from_text"]

CERT_FILE = "server-cert.pem"
KEY_FILE = "server-key.pem"
VALID_DAYS = 3650


def make_self_signed(directory: Path, names: Sequence[str]) -> bytes:
    """Write ``server-key.pem`` (0600) and ``server-cert.pem`` for ``names`` (DNS names or
    IP addresses, the first is the subject); returns the certificate's SHA-256 pin."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ConfigError("the `openssl` command is needed to make the server certificate")
    alt = ",".join(("IP:" if _is_ip(n) else "DNS:") + n for n in names)
    key, cert = directory / KEY_FILE, directory / CERT_FILE
    try:
        # The key is born 0600: the narrow umask is the child's alone, so this process's
        # other threads and tasks keep theirs.
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(VALID_DAYS),
             "-subj", f"/CN={names[0]}", "-addext", f"subjectAltName={alt}"],
            check=True, capture_output=True, timeout=60, umask=0o077)
    except subprocess.CalledProcessError as exc:
        raise ConfigError(f"openssl could not make the certificate: {exc.stderr.decode()}") \
            from exc
    cert.chmod(0o644)
    return cert_sha256(cert)


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def cert_sha256(cert_path: Path) -> bytes:
    """SHA-256 of the certificate's DER encoding: the pin agents and consoles hold."""
    try:
        der = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{cert_path}: not a PEM certificate: {exc}") from exc
    return hashlib.sha256(der).digest()


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
