import logging
import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagent.identity import (
    CertificateError,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    IdentityFileError,
    JoinToken,
    JoinTokenExpired,
    JoinTokenReused,
    KeyAgreementError,
    MalformedCertificate,
    MalformedJoinToken,
    MembershipCertificate,
    MeshRoot,
    MeshTrust,
    NodeCredentials,
    NodeIdentity,
    RedeemedTokens,
    RevocationList,
    UntrustedCertificate,
    UntrustedJoinToken,
    WeakNodeKey,
    WrongMesh,
    node_id_of,
    redeem_join_token,
)
from meshagent.identity import certificate as certificate_module
from meshagent.signing import Signed, SigningKey, sign

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def root() -> MeshRoot:
    return MeshRoot.create()


@pytest.fixture(scope="module")
def node() -> NodeIdentity:
    return NodeIdentity.generate()


def enroll(root: MeshRoot, node: NodeIdentity, **kw) -> MembershipCertificate:
    args = {"roles": ["agent"], "hostname": "laptop-1", "lifetime_s": 3600, "now": NOW}
    args.update(kw)
    return root.issue_certificate(node.sign_public, node.dh_public, **args)


def test_node_id_is_truncated_sha256_of_signing_key():
    assert node_id_of(b"\x01" * 32).hex() == "72cd6e8422c407fb6d098690f1130b7d"


def test_enrolled_certificate_round_trips_and_verifies(root, node):
    cert = enroll(root, node, roles=["relay", "agent", "agent"])
    again = MembershipCertificate.verify(cert.to_wire(), root.trust, now=NOW + 10)
    assert again.node_id == node.node_id
    assert again.dh_public == node.dh_public and again.sign_public == node.sign_public
    assert again.roles == ("agent", "relay")
    assert again.hostname == "laptop-1" and again.expires == NOW + 3600
    assert not again.via_token


def test_parsed_certificate_gives_back_the_bytes_it_came_in(root, node, monkeypatch):
    """Every member a joining agent learns hands its certificate's bytes to the datagram
    keys: a parsed certificate returns them as they came, with no encoding."""
    wire = enroll(root, node).to_wire()
    parsed = MembershipCertificate.from_wire(wire)
    again = MembershipCertificate.from_wire(wire)

    def no_encoding(value):
        raise AssertionError("encoded again")

    monkeypatch.setattr(certificate_module.codec, "pack", no_encoding)
    assert parsed.to_wire() == wire
    assert parsed == again  # the bytes kept are not part of the certificate's value


def test_certificate_of_another_mesh_is_wrong_mesh(root, node, caplog):
    other = MeshRoot.create()
    cert = enroll(other, node)
    with caplog.at_level(logging.WARNING), pytest.raises(WrongMesh):
        MembershipCertificate.verify(cert.to_wire(), root.trust, now=NOW)
    assert "certificate_rejected" in caplog.text and "WrongMesh" in caplog.text


def test_certificate_signed_by_another_key_for_this_mesh_is_untrusted(root, node):
    forger = MeshRoot(root.mesh_id, SigningKey.generate())
    cert = enroll(forger, node)
    with pytest.raises(UntrustedCertificate):
        MembershipCertificate.verify(cert, root.trust, now=NOW)


def test_tampered_certificate_body_is_untrusted(root, node):
    cert = enroll(root, node, roles=["agent"])
    body = cert.signed.value()
    body["roles"] = ["agent", "admin"]
    forged = Signed(cert.signed.kind, sign(SigningKey.generate(), "x", body).body,
                    cert.signed.signer, cert.signed.signature)
    with pytest.raises(UntrustedCertificate):
        MembershipCertificate.verify(forged, root.trust, now=NOW)


def test_certificate_whose_node_id_is_not_its_key_hash_is_untrusted(root, node):
    cert = enroll(root, node)
    body = cert.signed.value()
    body["node"] = bytes(16)
    with pytest.raises(UntrustedCertificate):
        MembershipCertificate.verify(sign(root.key, "membership-cert", body), root.trust,
                                     now=NOW)


def test_expired_and_future_certificates_are_refused(root, node, caplog):
    cert = enroll(root, node, lifetime_s=60)
    with caplog.at_level(logging.WARNING), pytest.raises(CertificateExpired):
        MembershipCertificate.verify(cert, root.trust, now=NOW + 61)
    assert "CertificateExpired" in caplog.text
    with pytest.raises(CertificateNotYetValid):
        MembershipCertificate.verify(cert, root.trust, now=NOW - 3600)
    # small clock skew is tolerated
    MembershipCertificate.verify(cert, root.trust, now=NOW - 60)


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x80", b"\x81\xa4cert\x01"])
def test_malformed_certificate_wire_is_a_typed_error(root, data):
    with pytest.raises(MalformedCertificate):
        MembershipCertificate.verify(data, root.trust, now=NOW)


def test_revocation_by_serial_and_by_node_id(root, node):
    cert = enroll(root, node)
    other = enroll(root, NodeIdentity.generate())
    by_serial = root.revoke(serials=[cert.serial], now=NOW)
    assert by_serial.version == 1 and by_serial.is_revoked(cert)
    assert not by_serial.is_revoked(other)
    with pytest.raises(CertificateRevoked):
        MembershipCertificate.verify(cert, root.trust, now=NOW, revocations=by_serial)
    by_node = root.revoke(node_ids=[other.node_id], previous=by_serial, now=NOW)
    assert by_node.version == 2 and by_node.is_revoked(cert) and by_node.is_revoked(other)


def test_revocation_merge_keeps_the_higher_version_in_any_order(root):
    empty = RevocationList.empty(root.mesh_id)
    first = root.revoke(serials=[1], previous=empty)
    second = root.revoke(serials=[2], previous=first)
    for a, b in [(first, second), (second, first), (empty, second), (second, empty)]:
        assert a.merge(b) is second
    assert second.serials == {1, 2}


def test_revocation_list_round_trips_and_rejects_forgery(root, tmp_path):
    issued = root.revoke(serials=[7], node_ids=[bytes(16)])
    path = tmp_path / "revocations"
    issued.save(path)
    loaded = RevocationList.load(path, root.trust)
    assert loaded.serials == {7} and loaded.node_ids == {bytes(16)} and loaded.version == 1
    forged = MeshRoot(root.mesh_id, SigningKey.generate()).revoke(serials=[8])
    with pytest.raises(UntrustedCertificate):
        RevocationList.verify(forged.to_wire(), root.trust)
    with pytest.raises(WrongMesh):
        RevocationList.verify(MeshRoot.create().revoke().to_wire(), root.trust)
    with pytest.raises(MalformedCertificate):
        RevocationList.verify(b"\x93", root.trust)


def test_private_files_are_created_owner_only(root, node, tmp_path):
    old = os.umask(0)
    try:
        root.save(tmp_path / "root.key")
        node.save(tmp_path / "node.key")
        root.trust.save(tmp_path / "mesh.trust")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "root.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "node.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "mesh.trust").st_mode) == 0o644
    assert MeshRoot.load(tmp_path / "root.key").trust == root.trust
    loaded = NodeIdentity.load(tmp_path / "node.key")
    assert loaded.node_id == node.node_id and loaded.dh_public == node.dh_public
    assert MeshTrust.load(tmp_path / "mesh.trust") == root.trust


def test_private_key_readable_by_others_is_refused(root, node, tmp_path):
    root.save(tmp_path / "root.key")
    node.save(tmp_path / "node.key")
    for name, load in (("root.key", MeshRoot.load), ("node.key", NodeIdentity.load)):
        os.chmod(tmp_path / name, 0o640)
        with pytest.raises(IdentityFileError, match="other users"):
            load(tmp_path / name)


def test_file_of_the_wrong_type_or_missing_is_an_identity_file_error(root, tmp_path):
    root.trust.save(tmp_path / "mesh.trust")
    with pytest.raises(IdentityFileError):
        NodeIdentity.load(tmp_path / "mesh.trust")
    with pytest.raises(IdentityFileError):
        MeshRoot.load(tmp_path / "absent")
    (tmp_path / "junk").write_bytes(b"\xc1")
    with pytest.raises(IdentityFileError):
        MeshTrust.load(tmp_path / "junk")


def test_x25519_shared_secret_agrees_and_low_order_key_is_refused():
    a, b = NodeIdentity.generate(), NodeIdentity.generate()
    assert a.dh(b.dh_public) == b.dh(a.dh_public)
    with pytest.raises(KeyAgreementError):
        a.dh(bytes(32))
    with pytest.raises(KeyAgreementError):
        a.dh(b"short")


def test_node_credentials_round_trip_through_a_node_directory(root, node, tmp_path):
    creds = NodeCredentials(node, enroll(root, node), root.trust)
    creds.save(tmp_path / "n")
    loaded = NodeCredentials.load(tmp_path / "n")
    assert loaded.certificate.to_wire() == creds.certificate.to_wire()
    assert loaded.identity.node_id == node.node_id and loaded.trust == root.trust
    with pytest.raises(UntrustedCertificate):
        NodeCredentials(NodeIdentity.generate(), creds.certificate, root.trust)


# -- join tokens ------------------------------------------------------------------------

def test_redeemed_token_certificate_is_accepted_by_members(root):
    token = root.issue_join_token(["agent"], lifetime_s=600, cert_lifetime_s=86400, now=NOW)
    joiner = NodeIdentity.generate()
    creds = redeem_join_token(token.encode(), joiner, "new-box", now=NOW + 5)
    assert creds.trust == root.trust
    cert = MembershipCertificate.verify(creds.certificate.to_wire(), root.trust,
                                        now=NOW + 3600, redeemed=RedeemedTokens())
    assert cert.via_token and cert.node_id == joiner.node_id
    assert cert.roles == ("agent",) and cert.serial == token.serial
    assert cert.expires == NOW + 5 + 86400


def test_second_node_redeeming_the_same_token_is_refused(root, caplog):
    token = root.issue_join_token(["agent"], lifetime_s=600, now=NOW)
    text = token.encode()
    first = redeem_join_token(text, NodeIdentity.generate(), "a", now=NOW).certificate
    second = redeem_join_token(text, NodeIdentity.generate(), "b", now=NOW).certificate
    redeemed = RedeemedTokens()
    MembershipCertificate.verify(first, root.trust, now=NOW, redeemed=redeemed)
    MembershipCertificate.verify(first, root.trust, now=NOW, redeemed=redeemed)  # idempotent
    with caplog.at_level(logging.WARNING), pytest.raises(JoinTokenReused):
        MembershipCertificate.verify(second, root.trust, now=NOW, redeemed=redeemed)
    assert "join_token_reused" in caplog.text
    assert redeemed.entries() == {token.token_id: first.node_id}


def test_redeemed_tokens_merge_from_gossiped_certificates(root, tmp_path):
    token = root.issue_join_token(["agent"], lifetime_s=600, now=NOW)
    first = redeem_join_token(token, NodeIdentity.generate(), "a", now=NOW).certificate
    second = redeem_join_token(token, NodeIdentity.generate(), "b", now=NOW).certificate
    redeemed = RedeemedTokens()
    refused = redeemed.merge([first.to_wire(), second.to_wire(), b"junk"], root.trust, now=NOW)
    assert refused == [second.node_id]
    redeemed.save(tmp_path / "r")
    assert RedeemedTokens.load(tmp_path / "r").entries() == redeemed.entries()


def test_expired_token_cannot_be_redeemed(root, caplog):
    token = root.issue_join_token(["agent"], lifetime_s=600, now=NOW)
    with caplog.at_level(logging.WARNING), pytest.raises(JoinTokenExpired):
        redeem_join_token(token.encode(), NodeIdentity.generate(), "late", now=NOW + 601)
    assert "join_token_rejected" in caplog.text


def test_certificate_backdated_outside_its_token_window_is_refused(root):
    token = root.issue_join_token(["agent"], lifetime_s=600, now=NOW)
    joiner = NodeIdentity.generate()
    late = MembershipCertificate.issue(
        token.secret, mesh_id=root.mesh_id, sign_public=joiner.sign_public,
        dh_public=joiner.dh_public, roles=["agent"], hostname="x", lifetime_s=60,
        now=NOW + 700, serial=token.serial, token=token)
    with pytest.raises(JoinTokenExpired):
        MembershipCertificate.verify(late, root.trust, now=NOW + 710)


def test_forged_token_is_refused_on_redeem_and_by_members(root, caplog):
    forger = MeshRoot(root.mesh_id, SigningKey.generate())
    forged = forger.issue_join_token(["agent"], lifetime_s=600, now=NOW)
    with caplog.at_level(logging.WARNING), pytest.raises(UntrustedJoinToken):
        redeem_join_token(forged.encode(), NodeIdentity.generate(), "x", root.trust, now=NOW)
    assert "join_token_rejected" in caplog.text and "UntrustedJoinToken" in caplog.text
    # redeemed without a pinned trust, a member of the real mesh still refuses it
    cert = redeem_join_token(forged.encode(), NodeIdentity.generate(), "x", now=NOW)
    with pytest.raises(UntrustedJoinToken):
        MembershipCertificate.verify(cert.certificate, root.trust, now=NOW)


def test_token_certificate_exceeding_its_token_roles_is_refused(root):
    token = root.issue_join_token(["agent"], lifetime_s=600, now=NOW)
    joiner = NodeIdentity.generate()
    greedy = MembershipCertificate.issue(
        token.secret, mesh_id=root.mesh_id, sign_public=joiner.sign_public,
        dh_public=joiner.dh_public, roles=["agent", "admin"], hostname="x", lifetime_s=60,
        now=NOW, serial=token.serial, token=token)
    with pytest.raises(UntrustedCertificate):
        MembershipCertificate.verify(greedy, root.trust, now=NOW)


# Ed25519 keys no mesh certifies: a point of order 8, and the identity (small order).
WEAK_KEYS = [bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
             b"\x01" + bytes(31)]


@pytest.mark.parametrize("weak", WEAK_KEYS, ids=["order-8", "identity"])
def test_root_refuses_to_certify_a_weak_signing_key(root, node, weak, caplog):
    """Verifiers may disagree on signatures under a key with a low-order component (see
    tests/core/test_pubkey.py), and anyone can forge some under a small-order one."""
    with caplog.at_level(logging.WARNING), pytest.raises(WeakNodeKey):
        root.issue_certificate(weak, node.dh_public, ["agent"], "odd-box", now=NOW)
    assert "certificate_refused" in caplog.text and "WeakNodeKey" in caplog.text


@pytest.mark.parametrize("weak", WEAK_KEYS, ids=["order-8", "identity"])
def test_token_certificate_for_a_weak_signing_key_is_refused_by_members(
        root, node, weak, monkeypatch, caplog):
    """A join token lets a node certify itself, so no root saw its key: every member
    checks it. The forger's own code skips the check when it makes the certificate."""
    token = root.issue_join_token(["agent"], lifetime_s=600, now=NOW)
    with monkeypatch.context() as forger:
        forger.setattr(certificate_module.core, "ed25519_weak_key", lambda key: False)
        forged = MembershipCertificate.issue(
            token.secret, mesh_id=root.mesh_id, sign_public=weak, dh_public=node.dh_public,
            roles=["agent"], hostname="x", lifetime_s=60, now=NOW, serial=token.serial,
            token=token)
    with caplog.at_level(logging.WARNING), pytest.raises(WeakNodeKey):
        MembershipCertificate.verify(forged.to_wire(), root.trust, now=NOW)
    assert "certificate_rejected" in caplog.text and "WeakNodeKey" in caplog.text


def test_revoking_a_token_serial_revokes_its_certificate(root):
    token = root.issue_join_token(["agent"], lifetime_s=600, now=NOW)
    cert = redeem_join_token(token, NodeIdentity.generate(), "x", now=NOW).certificate
    revocations = root.revoke(serials=[token.serial])
    with pytest.raises(CertificateRevoked):
        MembershipCertificate.verify(cert, root.trust, now=NOW, revocations=revocations)


@pytest.mark.parametrize("text", ["", "mjt1_", "mjt1_!!!", "nope", "mjt1_gqF0AaFrAQ"])
def test_malformed_token_string_is_a_typed_error(text):
    with pytest.raises(MalformedJoinToken):
        JoinToken.decode(text)


@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_are_never_a_certificate(data):
    trust = MeshTrust(bytes(16), bytes(32))
    with pytest.raises(MalformedCertificate):
        MembershipCertificate.from_wire(data)
    with pytest.raises(CertificateError):
        MembershipCertificate.verify(data, trust, now=NOW)


@given(text=st.text(max_size=200))
def test_arbitrary_text_is_never_a_join_token(text):
    with pytest.raises(MalformedJoinToken):
        JoinToken.decode(text)
