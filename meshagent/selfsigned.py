"""Self-signed TLS certificates made by the ``openssl`` command, pinned by SHA-256.

Peers of the mesh do not trust a CA: they pin the SHA-256 of a certificate's DER bytes
(``cert_sha256``), learnt out of band. The key pair and certificate come from the
``openssl`` command (no extra Python dependency): ECDSA P-256. Used by the web service's
certificate (``server.tls``) and the software AMT device's (``amt.device.tls``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import shutil
import ssl
import subprocess
from collections.abc import Sequence
from pathlib import Path

from meshagent.errors import ConfigError

__all__ = ["cert_sha256", "write_self_signed"]


def write_self_signed(key: Path, cert: Path, common_name: str, *,
                      alt_names: Sequence[str] = (), valid_days: int = 3650) -> None:
    """Write a new key (0600) and a certificate (0644) for ``common_name`` and the DNS
    names or IP addresses ``alt_names``; ConfigError if openssl is missing or fails.

    The key is born 0600: the narrow umask is the child's alone, so this process's other
    threads and tasks keep theirs."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ConfigError("the `openssl` command is needed to make a TLS certificate")
    command = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
               "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
               "-days", str(valid_days), "-subj", f"/CN={common_name}"]
    if alt_names:
        command += ["-addext", "subjectAltName=" + ",".join(
            ("IP:" if _is_ip(name) else "DNS:") + name for name in alt_names)]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=60, umask=0o077)
    except subprocess.CalledProcessError as exc:
        raise ConfigError(f"openssl could not make the certificate: {exc.stderr.decode()}") \
            from exc
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"openssl could not make the certificate: {exc}") from exc
    cert.chmod(0o644)


def cert_sha256(cert_path: Path) -> bytes:
    """SHA-256 of the certificate's DER encoding: the pin its peers hold."""
    try:
        der = ssl.PEM_cert_to_DER_cert(cert_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{cert_path}: not a PEM certificate: {exc}") from exc
    return hashlib.sha256(der).digest()


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
