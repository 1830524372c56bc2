"""``meshctl keys`` and ``meshctl allowlist`` on local files, end to end through main()."""

from __future__ import annotations

import json
import os
import stat

import pytest

from meshagent.cli.meshctl import main
from meshagent.commands import (
    Allowlist,
    CommandPolicy,
    OperatorCertificate,
    OperatorKey,
    OperatorRevoked,
    SeenCommands,
    Target,
    sign_command,
)
from meshagent.commands.allowlist import script_hash
from meshagent.identity import MeshRoot, NodeIdentity, RevocationList


@pytest.fixture
def mesh_dir(tmp_path):
    root = MeshRoot.create()
    root.save(tmp_path / "root.key")
    root.trust.save(tmp_path / "mesh.trust")
    return tmp_path


def _operator(mesh_dir, name="alice", scopes="read,run:tags"):
    key = mesh_dir / f"{name}.key"
    assert main(["keys", "create", name, "--out", str(key)]) == 0
    assert main(["keys", "sign", "--root", str(mesh_dir / "root.key"), "--key", f"{key}.pub",
                 "--scopes", scopes, "--ttl", "1h", "--out", str(mesh_dir / f"{name}.cert")]) == 0
    return OperatorKey.load(key), OperatorCertificate.load(mesh_dir / f"{name}.cert")


def test_created_key_is_private_and_signed_certificate_verifies(mesh_dir):
    key, cert = _operator(mesh_dir)
    assert stat.S_IMODE(os.stat(mesh_dir / "alice.key").st_mode) == 0o600
    root = MeshRoot.load(mesh_dir / "root.key")
    verified = OperatorCertificate.verify(cert.signed, root.trust)
    assert verified.public == key.public and verified.scopes == ("read", "run:tags")
    assert 3590 < verified.expires - verified.not_before <= 3600


def test_create_refuses_to_overwrite_a_key(mesh_dir, capsys):
    _operator(mesh_dir)
    assert main(["keys", "create", "alice", "--out", str(mesh_dir / "alice.key")]) == 1
    assert "exists" in capsys.readouterr().err


def test_revoked_operator_is_refused_by_agents(mesh_dir, tmp_path):
    key, cert = _operator(mesh_dir)
    assert main(["keys", "revoke", "--root", str(mesh_dir / "root.key"),
                 "--cert", str(mesh_dir / "alice.cert")]) == 0
    root = MeshRoot.load(mesh_dir / "root.key")
    revocations = RevocationList.load(mesh_dir / "revocations", root.trust)
    assert key.operator_id in revocations.node_ids and revocations.version == 1
    node = NodeIdentity.generate()
    with SeenCommands(tmp_path / "seen.db") as seen:
        policy = CommandPolicy(root.trust, node.node_id, seen, revocations=revocations,
                               allowlist=Allowlist.load(_allowlist(mesh_dir), root.trust))
        with pytest.raises(OperatorRevoked):
            policy.check(sign_command(key, cert, Target.all(), "ping", {}, 60))


def test_list_shows_status_against_trust_and_revocations(mesh_dir, capsys):
    _operator(mesh_dir, "alice")
    _operator(mesh_dir, "bob", scopes="*")
    main(["keys", "revoke", "--root", str(mesh_dir / "root.key"),
          "--key", str(mesh_dir / "bob.key.pub")])
    capsys.readouterr()
    assert main(["keys", "list", str(mesh_dir / "alice.cert"), str(mesh_dir / "bob.cert"),
                 "--trust", str(mesh_dir / "mesh.trust"), "--revocations",
                 str(mesh_dir / "revocations"), "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["alice"]["status"] == "valid" and rows["bob"]["status"] == "operator_revoked"
    assert main(["keys", "list", str(mesh_dir / "alice.cert")]) == 0
    assert "unchecked" in capsys.readouterr().out


def test_certificate_from_another_root_lists_as_unknown(mesh_dir, capsys, tmp_path):
    _operator(mesh_dir)
    other = tmp_path / "other"
    other.mkdir()
    MeshRoot.create().trust.save(other / "mesh.trust")
    capsys.readouterr()
    main(["keys", "list", str(mesh_dir / "alice.cert"), "--trust", str(other / "mesh.trust"),
          "--json"])
    assert json.loads(capsys.readouterr().out)[0]["status"] == "unknown_operator"


@pytest.mark.parametrize("argv", [
    ["keys", "sign", "--root", "ROOT", "--key", "nothex", "--scopes", "*", "--ttl", "1h",
     "--out", "OUT"],
    ["keys", "sign", "--root", "ROOT", "--key", "ab" * 32, "--scopes", "*", "--ttl", "1h",
     "--out", "OUT"],  # a hex key carries no name
    ["keys", "sign", "--root", "ROOT", "--key", "ab" * 32, "--scopes", "BAD", "--ttl", "1h",
     "--name", "x", "--out", "OUT"],
    ["keys", "revoke", "--root", "ROOT"],
])
def test_bad_input_is_a_clear_error(mesh_dir, argv, capsys):
    argv = [str(mesh_dir / "root.key") if a == "ROOT" else str(mesh_dir / "o") if a == "OUT"
            else a for a in argv]
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith("meshctl: ")


def _allowlist(mesh_dir):
    script = mesh_dir / "hello.sh"
    script.write_bytes(b"#!/bin/sh\necho hello\n")
    out = mesh_dir / "allowlist"
    assert main(["allowlist", "sign", "--root", str(mesh_dir / "root.key"),
                 "--actions", "ping,script", "--script", str(script), "--out", str(out)]) == 0
    return out


def test_allowlist_sign_show_and_version_bump(mesh_dir, capsys):
    out = _allowlist(mesh_dir)
    root = MeshRoot.load(mesh_dir / "root.key")
    first = Allowlist.load(out, root.trust)
    assert first.version == 1 and first.actions == {"ping", "script"}
    assert first.scripts == {script_hash(b"#!/bin/sh\necho hello\n"): "hello.sh"}
    assert main(["allowlist", "sign", "--root", str(mesh_dir / "root.key"),
                 "--actions", "ping,inventory", "--out", str(out)]) == 0
    assert Allowlist.load(out, root.trust).version == 2
    capsys.readouterr()
    assert main(["allowlist", "show", str(out), "--trust", str(mesh_dir / "mesh.trust"),
                 "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["version"] == 2 and view["actions"] == ["inventory", "ping"] and view["verified"]


def test_allowlist_signed_by_another_root_fails_to_show_as_verified(mesh_dir, tmp_path, capsys):
    out = _allowlist(mesh_dir)
    stranger = tmp_path / "stranger.trust"
    MeshRoot.create().trust.save(stranger)
    assert main(["allowlist", "show", str(out), "--trust", str(stranger)]) == 1
    assert "AllowlistError" in capsys.readouterr().err


def test_allowlist_with_scripts_but_no_script_action_is_refused(mesh_dir, capsys):
    script = mesh_dir / "x.sh"
    script.write_bytes(b"echo\n")
    assert main(["allowlist", "sign", "--root", str(mesh_dir / "root.key"), "--actions", "ping",
                 "--script", str(script), "--out", str(mesh_dir / "al")]) == 1
    assert main(["allowlist", "sign", "--root", str(mesh_dir / "root.key"), "--actions",
                 "script", "--script", str(mesh_dir / "missing.sh"),
                 "--out", str(mesh_dir / "al")]) == 1
