"""A self-signed TLS certificate for the software device, made with the ``openssl`` tool.

AMT presents a self-signed certificate on 16993; clients pin it by the SHA-256 of its DER
form (``sha256``), which is what ``AmtClient(cert_sha256=...)`` takes. One certificate can
serve many devices of one process (the scale tests start a hundred).
"""

from __future__ import annotations

import hashlib
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from meshagent.errors import ConfigError

__all__ = ["TlsCertificate"]


@dataclass(frozen=True)
class TlsCertificate:
    cert_path: Path
    key_path: Path

    @classmethod
    def generate(cls, directory: Path, common_name: str = "amt-sim") -> TlsCertificate:
        """Create (or reuse) ``amt-sim.crt``/``amt-sim.key`` in ``directory`` (P-256, 10 years)."""
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / "amt-sim.crt", directory / "amt-sim.key"
        if cert.exists() and key.exists():
            return cls(cert, key)
        command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650",
                   "-subj", f"/CN={common_name}", "-keyout", str(key), "-out", str(cert)]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConfigError(f"cannot create a TLS certificate with openssl: {exc}") from None
        key.chmod(0o600)
        return cls(cert, key)

    @property
    def sha256(self) -> bytes:
        """SHA-256 of the certificate's DER encoding (the pin clients use)."""
        pem = self.cert_path.read_text(encoding="ascii")
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).digest()

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert_path), str(self.key_path))
        return context
