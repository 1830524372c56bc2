from __future__ import annotations

import os
import stat
import time

import pytest

from meshagent.commands import (
    OperatorCertificate,
    OperatorExpired,
    OperatorKey,
    OperatorRevoked,
    UnknownOperator,
    authorise_operator,
)
from meshagent.commands.operator import load_public_key, scopes_allow, validate_scopes
from meshagent.errors import ConfigError
from meshagent.identity import MeshRoot
from meshagent.identity.errors import IdentityFileError


def test_certificate_verifies_against_its_root():
    root, key = MeshRoot.create(), OperatorKey.generate("alice")
    cert = authorise_operator(root, key.public, "alice", ["read", "power"], 3600)
    again = OperatorCertificate.verify(cert.to_wire(), root.trust)
    assert again == cert and again.operator_id == key.operator_id
    assert again.scopes == ("power", "read")


def test_certificate_from_another_mesh_is_unknown():
    root, other = MeshRoot.create(), MeshRoot.create()
    key = OperatorKey.generate("alice")
    cert = authorise_operator(other, key.public, "alice", ["*"], 3600)
    with pytest.raises(UnknownOperator):
        OperatorCertificate.verify(cert.signed, root.trust)


def test_certificate_outside_its_window_is_expired():
    root, key = MeshRoot.create(), OperatorKey.generate("alice")
    cert = authorise_operator(root, key.public, "alice", ["*"], 60, now=1000.0)
    OperatorCertificate.verify(cert.signed, root.trust, now=1030.0)
    for now in (999.0, 1060.0):
        with pytest.raises(OperatorExpired):
            OperatorCertificate.verify(cert.signed, root.trust, now=now)


def test_revocation_by_operator_id_applies(tmp_path):
    root, key = MeshRoot.create(), OperatorKey.generate("alice")
    cert = authorise_operator(root, key.public, "alice", ["*"], 3600)
    revocations = root.revoke(node_ids=[key.operator_id])
    with pytest.raises(OperatorRevoked):
        OperatorCertificate.verify(cert.signed, root.trust, revocations=revocations)


@pytest.mark.parametrize("scopes", [[], ["Read"], ["run:"], ["a b"], ["x" * 40]])
def test_malformed_scopes_are_refused(scopes):
    with pytest.raises(ConfigError):
        validate_scopes(scopes)


def test_scope_rules():
    assert scopes_allow(["*"], "anything", None)
    assert scopes_allow(["read"], "ping", "read")
    assert not scopes_allow(["read"], "power", "power")
    assert scopes_allow(["run:power"], "power", "power")
    assert not scopes_allow(["read"], "future", None)


def test_authorise_refuses_bad_input():
    root = MeshRoot.create()
    with pytest.raises(ConfigError):
        authorise_operator(root, b"short", "alice", ["*"], 3600)
    with pytest.raises(ConfigError):
        authorise_operator(root, OperatorKey.generate("a").public, "", ["*"], 3600)
    with pytest.raises(ConfigError):
        authorise_operator(root, OperatorKey.generate("a").public, "a", ["*"], 0)
    with pytest.raises(ConfigError, match="low-order"):  # a point of order 8
        authorise_operator(root, bytes.fromhex(
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
            "a", ["*"], 3600)


def test_key_files_round_trip_and_private_key_is_owner_only(tmp_path):
    key = OperatorKey.generate("alice")
    path = tmp_path / "alice.key"
    key.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = OperatorKey.load(path)
    assert loaded.public == key.public and loaded.name == "alice"
    assert load_public_key(f"{path}.pub") == (key.public, "alice")
    assert load_public_key(key.public.hex()) == (key.public, None)


def test_certificate_file_round_trips(tmp_path):
    root, key = MeshRoot.create(), OperatorKey.generate("alice")
    cert = authorise_operator(root, key.public, "alice", ["*"], 3600, now=time.time())
    cert.save(tmp_path / "alice.cert")
    assert OperatorCertificate.load(tmp_path / "alice.cert") == cert


@pytest.mark.parametrize("spec", ["zz", "ab" * 31])
def test_bad_public_key_spec_is_a_config_error(spec):
    with pytest.raises(ConfigError):
        load_public_key(spec)


def test_wrong_file_type_is_refused(tmp_path):
    root = MeshRoot.create()
    root.save(tmp_path / "root")
    with pytest.raises(IdentityFileError):
        OperatorKey.load(tmp_path / "root")
