"""Node ids, the mesh trust anchor every agent holds, and a node's own keys."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from meshagent.errors import MeshError
from meshagent.identity.errors import IdentityFileError
from meshagent.identity.files import read_document, write_document
from meshagent.identity.x25519 import X25519Key
from meshagent.signing import PUBLIC_KEY_BYTES, SigningKey

__all__ = ["NODE_ID_BYTES", "MESH_ID_BYTES", "node_id_of", "MeshTrust", "NodeIdentity"]

NODE_ID_BYTES = 16
MESH_ID_BYTES = 16


def node_id_of(sign_public: bytes) -> bytes:
    """A node's id: the first 16 bytes of SHA-256 of its raw Ed25519 public key."""
    return hashlib.sha256(sign_public).digest()[:NODE_ID_BYTES]


@dataclass(frozen=True)
class MeshTrust:
    """What every agent of a mesh holds: the mesh id and the root's public key."""

    mesh_id: bytes
    root_public: bytes

    def __post_init__(self) -> None:
        if len(self.mesh_id) != MESH_ID_BYTES or len(self.root_public) != PUBLIC_KEY_BYTES:
            raise IdentityFileError("mesh id must be 16 bytes and root key 32 bytes")

    def save(self, path: str | os.PathLike[str]) -> None:
        write_document(path, "mesh-trust", {"mesh": self.mesh_id, "root": self.root_public},
                       private=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MeshTrust:
        doc = read_document(path, "mesh-trust")
        mesh, root = doc.get("mesh"), doc.get("root")
        if not isinstance(mesh, bytes) or not isinstance(root, bytes):
            raise IdentityFileError(f"{path}: mesh or root missing")
        return cls(mesh, root)


class NodeIdentity:
    """This node's keys: Ed25519 ``sign_key`` (its id, its signatures) and an X25519
    static key (its half of every handshake). Never leaves the node."""

    def __init__(self, sign_key: SigningKey, dh_key: X25519Key) -> None:
        self.sign_key = sign_key
        self._dh_key = dh_key

    @classmethod
    def generate(cls) -> NodeIdentity:
        return cls(SigningKey.generate(), X25519Key.generate())

    @property
    def node_id(self) -> bytes:
        return node_id_of(self.sign_key.public)

    @property
    def sign_public(self) -> bytes:
        return self.sign_key.public

    @property
    def dh_public(self) -> bytes:
        return self._dh_key.public

    @property
    def dh_key(self) -> X25519Key:
        return self._dh_key

    def dh(self, peer_dh_public: bytes) -> bytes:
        """X25519 shared secret with a peer's public key (KeyAgreementError if invalid)."""
        return self._dh_key.exchange(peer_dh_public)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write both private keys to ``path``, owner-only (0600)."""
        write_document(path, "node-identity",
                       {"sign": self.sign_key.seed, "dh": self._dh_key.private_bytes},
                       private=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NodeIdentity:
        doc = read_document(path, "node-identity", private=True)
        sign, dh = doc.get("sign"), doc.get("dh")
        if not isinstance(sign, bytes) or not isinstance(dh, bytes):
            raise IdentityFileError(f"{path}: keys missing")
        try:
            return cls(SigningKey.from_seed(sign), X25519Key.from_private_bytes(dh))
        except MeshError as exc:  # DecodeError / KeyAgreementError on bad lengths
            raise IdentityFileError(f"{path}: invalid key material") from exc
