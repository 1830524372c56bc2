from __future__ import annotations

import pytest

from meshagent.commands import Allowlist, AllowlistError, NotAllowlisted, build_allowlist
from meshagent.commands.allowlist import script_hash
from meshagent.errors import ConfigError
from meshagent.identity import MeshRoot
from meshagent.signing import Signed, sign


def test_allowlist_round_trips_and_checks_actions_and_scripts(tmp_path):
    root = MeshRoot.create()
    allowlist = build_allowlist(root, ["ping", "script"], {"hello": b"echo hello\n"})
    allowlist.save(tmp_path / "allowlist")
    loaded = Allowlist.load(tmp_path / "allowlist", root.trust)
    assert loaded == allowlist and loaded.version == 1
    assert loaded.scripts == {script_hash(b"echo hello\n"): "hello"}
    loaded.check("ping", {})
    loaded.check("script", {"content": b"echo hello\n"})
    with pytest.raises(NotAllowlisted):
        loaded.check("power", {})
    with pytest.raises(NotAllowlisted):
        loaded.check("script", {"content": b"echo hello \n"})
    with pytest.raises(NotAllowlisted):
        loaded.check("script", {})


def test_allowlist_not_signed_by_the_root_is_refused():
    root, impostor = MeshRoot.create(), MeshRoot.create()
    forged = build_allowlist(MeshRoot(root.mesh_id, impostor.key), ["ping", "power"])
    with pytest.raises(AllowlistError):
        Allowlist.verify(forged.to_wire(), root.trust)


def test_allowlist_for_another_mesh_is_refused():
    root, other = MeshRoot.create(), MeshRoot.create()
    with pytest.raises(AllowlistError):
        Allowlist.verify(build_allowlist(other, ["ping"]).signed,
                         MeshRoot(root.mesh_id, other.key).trust)


def test_root_signature_of_another_kind_is_not_an_allowlist():
    root = MeshRoot.create()
    genuine = build_allowlist(root, ["ping"])
    relabelled = sign(root.key, "revocations", genuine.signed.value())
    with pytest.raises(AllowlistError):
        Allowlist.verify(Signed("allowlist", relabelled.body, relabelled.signer,
                                relabelled.signature), root.trust)


def test_malformed_allowlist_is_refused():
    root = MeshRoot.create()
    with pytest.raises(AllowlistError):
        Allowlist.verify(sign(root.key, "allowlist", {"mesh": root.mesh_id}), root.trust)
    with pytest.raises(AllowlistError):
        Allowlist.verify(b"\xc1", root.trust)


def test_versions_only_go_up():
    root = MeshRoot.create()
    v1 = build_allowlist(root, ["ping"])
    v2 = build_allowlist(root, ["ping", "inventory"], previous=v1)
    assert v2.version == 2 and v2.newer(v1) is v2 and v1.newer(v2) is v2
    assert v2.newer(v2) is v2 and build_allowlist(root, ["tags"], version=2).newer(v2) is v2
    with pytest.raises(ConfigError):
        build_allowlist(root, ["ping"], previous=v2, version=2)


def test_scripts_need_the_script_action_and_names_are_checked():
    root = MeshRoot.create()
    with pytest.raises(ConfigError):
        build_allowlist(root, ["ping"], {"x": b"echo"})
    with pytest.raises(ConfigError):
        build_allowlist(root, ["Not An Action"])
