import io
import json
import os
import stat

import pytest

from meshagent.cli.main import main
from meshagent.identity import (
    MembershipCertificate,
    MeshTrust,
    NodeCredentials,
    RevocationList,
)


def mesh(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["mesh", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def mesh_dir(tmp_path, capsys):
    code, out, _ = mesh(capsys, "init", "--dir", str(tmp_path / "mesh"))
    assert code == 0 and "created" in out
    return tmp_path / "mesh"


def test_init_writes_an_owner_only_root_key_and_refuses_to_overwrite_it(mesh_dir, capsys):
    assert stat.S_IMODE(os.stat(mesh_dir / "root.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(mesh_dir).st_mode) == 0o700
    trust = MeshTrust.load(mesh_dir / "mesh.trust")
    code, _, err = mesh(capsys, "init", "--dir", str(mesh_dir))
    assert code == 1 and "exists" in err
    assert MeshTrust.load(mesh_dir / "mesh.trust") == trust


def test_enroll_creates_a_node_that_verifies_and_keeps_its_key_on_renewal(mesh_dir, tmp_path,
                                                                          capsys):
    node_dir = tmp_path / "node"
    code, out, _ = mesh(capsys, "enroll", "--dir", str(mesh_dir), "--node-dir", str(node_dir),
                        "--roles", "agent,relay", "--hostname", "box1", "--lifetime", "30d")
    assert code == 0 and "box1" in out
    creds = NodeCredentials.load(node_dir)
    cert = MembershipCertificate.verify(creds.certificate, MeshTrust.load(
        mesh_dir / "mesh.trust"))
    assert cert.roles == ("agent", "relay") and cert.expires - cert.not_before == 30 * 86400
    assert stat.S_IMODE(os.stat(node_dir / "node.key").st_mode) == 0o600
    mesh(capsys, "enroll", "--dir", str(mesh_dir), "--node-dir", str(node_dir))
    renewed = NodeCredentials.load(node_dir)
    assert renewed.identity.node_id == creds.identity.node_id
    assert renewed.certificate.serial != creds.certificate.serial


def test_token_redeemed_from_stdin_gives_a_token_chained_certificate(mesh_dir, tmp_path,
                                                                     capsys, monkeypatch):
    code, out, err = mesh(capsys, "token", "--dir", str(mesh_dir), "--roles", "agent",
                          "--ttl", "15m")
    token = out.strip()
    assert code == 0 and token.startswith("mjt1_") and "secret" in err
    monkeypatch.setattr("sys.stdin", io.StringIO(token + "\n"))
    code, out, _ = mesh(capsys, "redeem", "-", "--node-dir", str(tmp_path / "joiner"),
                        "--hostname", "joiner", "--trust", str(mesh_dir / "mesh.trust"))
    assert code == 0 and "joined" in out
    creds = NodeCredentials.load(tmp_path / "joiner")
    assert creds.certificate.via_token
    MembershipCertificate.verify(creds.certificate, MeshTrust.load(mesh_dir / "mesh.trust"))


def test_redeeming_a_forged_token_fails_cleanly(mesh_dir, tmp_path, capsys):
    other = tmp_path / "other"
    mesh(capsys, "init", "--dir", str(other))
    _, out, _ = mesh(capsys, "token", "--dir", str(other))
    code, _, err = mesh(capsys, "redeem", out.strip(), "--node-dir", str(tmp_path / "n"),
                        "--trust", str(mesh_dir / "mesh.trust"))
    assert code == 1 and "WrongMesh" in err
    assert not (tmp_path / "n" / "node.cert").exists()


def test_revoke_bumps_the_version_and_show_reports_the_node_revoked(mesh_dir, tmp_path,
                                                                    capsys):
    node_dir = tmp_path / "node"
    mesh(capsys, "enroll", "--dir", str(mesh_dir), "--node-dir", str(node_dir))
    cert = NodeCredentials.load(node_dir).certificate
    code, out, _ = mesh(capsys, "revoke", "--dir", str(mesh_dir), "--serial", str(cert.serial),
                        "--copy-to", str(node_dir))
    assert code == 0 and "version 1" in out
    mesh(capsys, "revoke", "--dir", str(mesh_dir), "--node", "00" * 16)
    trust = MeshTrust.load(mesh_dir / "mesh.trust")
    latest = RevocationList.load(mesh_dir / "revocations", trust)
    assert latest.version == 2 and cert.serial in latest.serials
    code, out, _ = mesh(capsys, "show", "--dir", str(mesh_dir), "--node-dir", str(node_dir),
                        "--json")
    report = json.loads(out)
    assert report["node"]["status"].startswith("CertificateRevoked")
    assert report["revocations"]["version"] == 2
    assert report["mesh"]["mesh_id"] == trust.mesh_id.hex()


def test_show_of_a_valid_node_in_text(mesh_dir, tmp_path, capsys):
    mesh(capsys, "enroll", "--dir", str(mesh_dir), "--node-dir", str(tmp_path / "n"),
         "--hostname", "visible")
    code, out, _ = mesh(capsys, "show", "--node-dir", str(tmp_path / "n"))
    assert code == 0 and "status: valid" in out and "hostname: visible" in out


@pytest.mark.parametrize("args", [["revoke", "--dir", "X"], ["show"],
                                  ["enroll", "--dir", "/nonexistent", "--node-dir", "/tmp/x"]])
def test_bad_invocations_exit_with_an_error_message(args, capsys, tmp_path):
    args = [str(tmp_path / "m") if a == "X" else a for a in args]
    code, _, err = mesh(capsys, *args)
    assert code == 1 and err


@pytest.mark.parametrize("ttl", ["0", "abc", "5y"])
def test_bad_duration_is_refused_by_the_parser(mesh_dir, capsys, ttl):
    with pytest.raises(SystemExit):
        main(["mesh", "token", "--dir", str(mesh_dir), "--ttl", ttl])


def test_renew_reissues_for_the_same_keys_expired_included_and_refuses_forgeries(
        mesh_dir, tmp_path, capsys):
    from meshagent.identity import MeshRoot, NodeIdentity, load_certificate, save_certificate
    root = MeshRoot.load(mesh_dir / "root.key")
    identity = NodeIdentity.generate()
    expired = root.issue_certificate(identity.sign_public, identity.dh_public,
                                     ["agent", "relay"], "laptop-7", lifetime_s=60,
                                     now=1_700_000_000)
    save_certificate(tmp_path / "old.cert", expired.to_wire())
    code, out, _ = mesh(capsys, "renew", "--dir", str(mesh_dir), "--out",
                        str(tmp_path / "new"), "--lifetime", "30d", str(tmp_path / "old.cert"))
    assert code == 0 and "1 certificate(s) renewed" in out
    renewed = load_certificate(tmp_path / "new" / f"{identity.node_id.hex()}.cert")
    checked = MembershipCertificate.verify(renewed.to_wire(), root.trust)
    assert (checked.sign_public, checked.dh_public, checked.roles, checked.hostname) == (
        identity.sign_public, identity.dh_public, ("agent", "relay"), "laptop-7")
    assert checked.serial != expired.serial
    assert 29 * 86400 < checked.expires - checked.not_before <= 30 * 86400

    # A file that is no certificate, another mesh's certificate, and a revoked one are not
    # renewed; nothing is written.
    (tmp_path / "junk.cert").write_bytes(b"not a certificate")
    code, _, err = mesh(capsys, "renew", "--dir", str(mesh_dir), "--out",
                        str(tmp_path / "none"), str(tmp_path / "junk.cert"))
    assert code == 1 and "IdentityFileError" in err
    forged = MeshRoot.create().issue_certificate(identity.sign_public, identity.dh_public,
                                                 ["agent"], "laptop-7")
    save_certificate(tmp_path / "forged.cert", forged.to_wire())
    code, _, err = mesh(capsys, "renew", "--dir", str(mesh_dir), "--out",
                        str(tmp_path / "none"), str(tmp_path / "forged.cert"))
    assert code == 1 and "not renewed: WrongMesh" in err
    assert not (tmp_path / "none").exists()
    assert mesh(capsys, "revoke", "--dir", str(mesh_dir), "--serial",
                str(renewed.serial))[0] == 0
    code, _, err = mesh(capsys, "renew", "--dir", str(mesh_dir), "--out",
                        str(tmp_path / "none"),
                        str(tmp_path / "new" / f"{identity.node_id.hex()}.cert"))
    assert code == 1 and "CertificateRevoked" in err
