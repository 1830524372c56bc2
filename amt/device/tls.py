"""A self-signed TLS certificate for the software device, made with the ``openssl`` tool.

AMT presents a self-signed certificate on 16993; clients pin it by the SHA-256 of its DER
form (``sha256``), which is what ``AmtClient(cert_sha256=...)`` takes. One certificate can
serve many devices of one process (the scale tests start a hundred).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from meshagent.selfsigned import cert_sha256, write_self_signed

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
        if not (cert.exists() and key.exists()):
            write_self_signed(key, cert, common_name)
        return cls(cert, key)

    @property
    def sha256(self) -> bytes:
        """SHA-256 of the certificate's DER encoding (the pin clients use)."""
        return cert_sha256(self.cert_path)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert_path), str(self.key_path))
        return context
