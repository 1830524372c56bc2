"""Operators: Ed25519 keys the mesh root authorises, with scopes and an expiry.

Trust chain: the mesh root signs an ``OperatorCertificate`` (kind ``"operator-cert"``)
binding an operator's public key to a mesh, a name, a set of scopes and a validity
window. The operator signs commands with that key; every command carries the
certificate, so an agent needs nothing but the root's public key (``MeshTrust``) to
check who may do what.

Operator ids are derived exactly like node ids (``identity.node_id_of``: SHA-256 of the
public key, first 16 bytes). That lets the mesh's one root-signed ``RevocationList``
withdraw an operator early: ``MeshRoot.revoke(node_ids=[operator_id])`` lists the key id,
and the list gossips and converges like any revocation (higher version wins). Only the id
is consulted for operators, never ``serials`` (those number membership certificates).

Scopes (strings): ``"*"`` everything; ``"run:<action>"`` that one action; otherwise the
scope word an action declares (``"read"`` for ping and inventory, ``"script"``,
``"power"``, ``"tags"``). Unknown scope words are kept (a newer agent may know them).

Functions here take parameters; the console CLI and the web service both call
``authorise_operator`` and ship ``cert.to_wire()``.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from meshagent import core
from meshagent.commands.rejections import OperatorExpired, OperatorRevoked, UnknownOperator
from meshagent.errors import ConfigError, DecodeError, MeshError
from meshagent.identity import MeshRoot, MeshTrust, RevocationList, node_id_of
from meshagent.identity.errors import IdentityFileError
from meshagent.identity.files import read_document, write_document
from meshagent.signing import PUBLIC_KEY_BYTES, SignatureError, Signed, SigningKey, sign, verify

__all__ = [
    "OPERATOR_ID_BYTES", "OPERATOR_CERT_KIND", "OperatorKey", "OperatorCertificate",
    "operator_id_of", "authorise_operator", "scopes_allow", "validate_scopes",
    "load_public_key", "save_public_key",
]

OPERATOR_ID_BYTES = 16
OPERATOR_CERT_KIND = "operator-cert"
_SCOPE_RE = re.compile(r"^(\*|[a-z][a-z0-9_-]{0,31}(:[a-z0-9_.-]{1,64})?)$")
_MAX_SCOPES = 64
_MAX_NAME = 128
_KEY_FILE = "operator-key"
_PUBLIC_FILE = "operator-public"
_CERT_FILE = "operator-cert"

# An operator's id is its key id, derived like a node's (see the module docstring).
operator_id_of = node_id_of


def validate_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Sorted, de-duplicated scopes; ConfigError for an empty list or a malformed word."""
    result = tuple(sorted(set(scopes)))
    if not result or len(result) > _MAX_SCOPES:
        raise ConfigError(f"scopes: between 1 and {_MAX_SCOPES} are required")
    for scope in result:
        if not isinstance(scope, str) or not _SCOPE_RE.match(scope):
            raise ConfigError(f"scopes: malformed scope {scope!r}")
    return result


def scopes_allow(scopes: Iterable[str], action: str, action_scope: str | None) -> bool:
    """True if ``scopes`` cover ``action``, whose declared scope word is ``action_scope``.

    An action this agent does not know (``action_scope`` None) needs ``"*"`` or
    ``"run:<action>"``.
    """
    granted = set(scopes)
    return ("*" in granted or f"run:{action}" in granted
            or (action_scope is not None and action_scope in granted))


@dataclass(frozen=True)
class OperatorKey:
    """An operator's private signing key and a human name."""

    name: str
    key: SigningKey

    @classmethod
    def generate(cls, name: str) -> OperatorKey:
        return cls(name, SigningKey.generate())

    @property
    def public(self) -> bytes:
        return self.key.public

    @property
    def operator_id(self) -> bytes:
        return operator_id_of(self.key.public)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the private key owner-only (0600) and ``<path>.pub`` with the public key."""
        write_document(path, _KEY_FILE, {"name": self.name, "seed": self.key.seed},
                       private=True)
        save_public_key(f"{os.fspath(path)}.pub", self.public, self.name)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OperatorKey:
        doc = read_document(path, _KEY_FILE)
        name, seed = doc.get("name"), doc.get("seed")
        if not isinstance(name, str) or not isinstance(seed, bytes):
            raise IdentityFileError(f"{path}: operator name or key missing")
        try:
            return cls(name, SigningKey.from_seed(seed))
        except MeshError as exc:
            raise IdentityFileError(f"{path}: invalid operator key") from exc


def save_public_key(path: str | os.PathLike[str], public: bytes, name: str) -> None:
    write_document(path, _PUBLIC_FILE, {"name": name, "public": public}, private=False)


def load_public_key(spec: str) -> tuple[bytes, str | None]:
    """(public key, name) from a ``.pub`` file (``OperatorKey.save``) or 64 hex digits."""
    if os.path.exists(spec):
        doc = read_document(spec, _PUBLIC_FILE)
        public, name = doc.get("public"), doc.get("name")
        if not isinstance(public, bytes) or len(public) != PUBLIC_KEY_BYTES:
            raise IdentityFileError(f"{spec}: public key missing")
        return public, name if isinstance(name, str) else None
    try:
        raw = bytes.fromhex(spec)
    except ValueError as exc:
        raise ConfigError(f"{spec}: neither a public key file nor a hex public key") from exc
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ConfigError(f"{spec}: an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes")
    return raw, None


@dataclass(frozen=True)
class OperatorCertificate:
    """The root's statement that ``public`` may act on mesh ``mesh_id`` within ``scopes``.

    Fields are trustworthy only once ``verify`` returned it. Times are unix seconds.
    """

    mesh_id: bytes
    public: bytes
    name: str
    scopes: tuple[str, ...]
    serial: int
    not_before: float
    expires: float
    signed: Signed = field(compare=False, repr=False)

    @property
    def operator_id(self) -> bytes:
        return operator_id_of(self.public)

    def to_wire(self) -> bytes:
        return self.signed.to_wire()

    def allows(self, action: str, action_scope: str | None) -> bool:
        return scopes_allow(self.scopes, action, action_scope)

    def save(self, path: str | os.PathLike[str]) -> None:
        write_document(path, _CERT_FILE, {"doc": self.to_wire()}, private=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OperatorCertificate:
        """Read a certificate file WITHOUT verifying it (``verify`` does that)."""
        doc = read_document(path, _CERT_FILE).get("doc")
        if not isinstance(doc, bytes):
            raise IdentityFileError(f"{path}: certificate missing")
        try:
            return cls.from_signed(Signed.from_wire(doc))
        except DecodeError as exc:
            raise IdentityFileError(f"{path}: {exc}") from exc

    @classmethod
    def from_signed(cls, signed: Signed) -> OperatorCertificate:
        """Parse the body WITHOUT checking the signature (use ``verify`` for that)."""
        body = signed.value()
        try:
            cert = cls(body["mesh"], body["pub"], body["name"], tuple(body["scopes"]),
                       body["serial"], float(body["nb"]), float(body["exp"]), signed)
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError("operator certificate lacks a field") from exc
        if not (isinstance(cert.mesh_id, bytes) and isinstance(cert.public, bytes)
                and len(cert.public) == PUBLIC_KEY_BYTES and isinstance(cert.name, str)
                and isinstance(cert.serial, int)
                and all(isinstance(s, str) for s in cert.scopes)):
            raise DecodeError("operator certificate fields have the wrong types")
        return cert

    @classmethod
    def verify(cls, signed: Signed | bytes, trust: MeshTrust, now: float | None = None,
               revocations: RevocationList | None = None) -> OperatorCertificate:
        """Check root signature, mesh, revocation and validity window, in that order.

        Raises UnknownOperator (not signed by this mesh's root, other mesh, unparsable),
        OperatorRevoked, OperatorExpired.
        """
        try:
            if isinstance(signed, bytes):
                signed = Signed.from_wire(signed)
            verify(signed, OPERATOR_CERT_KIND, trust.root_public)
            cert = cls.from_signed(signed)
        except (SignatureError, DecodeError) as exc:
            raise UnknownOperator(f"operator certificate not from this mesh's root: {exc}") \
                from exc
        if cert.mesh_id != trust.mesh_id:
            raise UnknownOperator("operator certificate is for another mesh")
        if revocations is not None and cert.operator_id in revocations.node_ids:
            raise OperatorRevoked(f"operator {cert.operator_id.hex()} ({cert.name}) is revoked")
        now = time.time() if now is None else now
        if not cert.not_before <= now < cert.expires:
            raise OperatorExpired(f"operator {cert.name} certificate valid "
                                  f"{cert.not_before:.0f}..{cert.expires:.0f}, now {now:.0f}")
        return cert


def authorise_operator(root: MeshRoot, public: bytes, name: str, scopes: Iterable[str],
                       lifetime_s: float, now: float | None = None) -> OperatorCertificate:
    """Have the root sign an operator certificate for ``public``; ConfigError on bad input."""
    if len(public) != PUBLIC_KEY_BYTES:
        raise ConfigError(f"operator public key must be {PUBLIC_KEY_BYTES} bytes")
    if core.ed25519_weak_key(public):  # see WeakNodeKey: agents could disagree on it
        raise ConfigError("operator public key has a low-order component or small order")
    if not name or len(name) > _MAX_NAME:
        raise ConfigError(f"operator name must be 1..{_MAX_NAME} characters")
    if lifetime_s <= 0:
        raise ConfigError("operator certificate lifetime must be positive")
    now = time.time() if now is None else now
    body = {"mesh": root.mesh_id, "pub": public, "name": name,
            "scopes": list(validate_scopes(scopes)), "serial": secrets.randbits(62),
            "nb": float(now), "exp": float(now + lifetime_s)}
    return OperatorCertificate.from_signed(sign(root.key, OPERATOR_CERT_KIND, body))
