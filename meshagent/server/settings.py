"""The web service's directory, made by ``meshagent server init --dir DIR``.

    DIR/server.json            admin password hash, served meshes (id, root key, name,
                               the console operator's certificate for each)
    DIR/server-cert.pem        TLS certificate (self-signed), its key in server-key.pem (0600)
    DIR/console-operator.key   the console operator's signing key (0600) and .pub

Meshes are added with ``meshagent server add-mesh --dir DIR TRUST_FILE``; a leader of a
mesh that is not listed is refused. The console operator key signs commands that admins
issue from the web page; it acts only in meshes whose root authorised it (``meshctl keys``
on the root's machine, then ``add-mesh --console-cert``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshagent.atomicfile import write_atomically
from meshagent.commands import OperatorCertificate, OperatorKey
from meshagent.errors import ConfigError, MeshError
from meshagent.identity import MeshTrust
from meshagent.identity.files import PRIVATE_MODE
from meshagent.server.auth import PasswordHash
from meshagent.server.service import ConsoleSigner, MeshConfig
from meshagent.server.tls import CERT_FILE, cert_sha256, make_self_signed
from meshagent.signing import Signed

__all__ = ["ServerDirectory", "SETTINGS_FILE", "CONSOLE_KEY_FILE"]

SETTINGS_FILE = "server.json"
CONSOLE_KEY_FILE = "console-operator.key"


@dataclass
class ServerDirectory:
    path: Path
    admin_hash: PasswordHash
    meshes: list[dict[str, Any]]

    @classmethod
    def init(cls, path: Path, names: Sequence[str], admin_password: str | None = None,
             force: bool = False) -> tuple[ServerDirectory, str]:
        """Create the directory's certificate, console key and settings; returns it and
        the admin password (generated if not given: shown once, stored hashed)."""
        path.mkdir(parents=True, exist_ok=True)
        if (path / SETTINGS_FILE).exists() and not force:
            raise ConfigError(f"{path / SETTINGS_FILE} exists (use --force to start over)")
        password = admin_password or secrets.token_urlsafe(18)
        make_self_signed(path, names)
        OperatorKey.generate("web-console").save(path / CONSOLE_KEY_FILE)
        directory = cls(path, PasswordHash.of(password), [])
        directory.save()
        return directory, password

    @classmethod
    def load(cls, path: Path) -> ServerDirectory:
        try:
            obj = json.loads((path / SETTINGS_FILE).read_text())
            return cls(path, PasswordHash(obj["admin_hash"]), list(obj.get("meshes", [])))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: not a server directory (run `meshagent server init`):"
                              f" {exc}") from exc

    def save(self) -> None:
        text = json.dumps({"admin_hash": self.admin_hash.text, "meshes": self.meshes}, indent=1)
        write_atomically(self.path / SETTINGS_FILE, text.encode(), mode=PRIVATE_MODE)

    @property
    def cert_pin(self) -> bytes:
        return cert_sha256(self.path / CERT_FILE)

    def console_key(self) -> OperatorKey:
        return OperatorKey.load(self.path / CONSOLE_KEY_FILE)

    def add_mesh(self, trust: MeshTrust, name: str, console_cert: bytes | None = None) -> None:
        """Serve ``trust``'s mesh (or update its name / console certificate)."""
        if console_cert is not None:
            try:
                cert = OperatorCertificate.verify(console_cert, trust)
            except MeshError as exc:
                raise ConfigError(f"console certificate: {exc}") from exc
            if cert.public != self.console_key().public:
                raise ConfigError("console certificate is for another key than "
                                  f"{self.path / CONSOLE_KEY_FILE}")
        entry = {"mesh": trust.mesh_id.hex(), "root": trust.root_public.hex(), "name": name,
                 "console_cert": console_cert.hex() if console_cert else None}
        for existing in self.meshes:
            if existing["mesh"] == entry["mesh"]:
                if existing["root"] != entry["root"]:
                    raise ConfigError(f"mesh {entry['mesh']} is registered with another root")
                existing.update({k: v for k, v in entry.items() if v is not None})
                break
        else:
            self.meshes.append(entry)
        self.save()

    def mesh_configs(self) -> list[MeshConfig]:
        configs = []
        for entry in self.meshes:
            trust = MeshTrust(bytes.fromhex(entry["mesh"]), bytes.fromhex(entry["root"]))
            cert = None
            if entry.get("console_cert"):
                cert = OperatorCertificate.from_signed(
                    Signed.from_wire(bytes.fromhex(entry["console_cert"])))
            configs.append(MeshConfig(trust, entry.get("name") or entry["mesh"][:8], cert))
        return configs

    def console_signer(self) -> ConsoleSigner:
        return ConsoleSigner(self.console_key(), {
            m.trust.mesh_id: m.console_cert for m in self.mesh_configs() if m.console_cert})
