"""Every way a command can be refused, in the documented order, with its audit reason."""

from __future__ import annotations

import logging
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshagent import codec
from meshagent.commands import (
    AllowlistError,
    CommandExpired,
    CommandRejected,
    ForgedCommand,
    MalformedCommand,
    NotAllowlisted,
    NotYetValid,
    OperatorExpired,
    OperatorKey,
    OperatorRevoked,
    OutOfScope,
    ReplayedCommand,
    SignedCommand,
    Target,
    UnknownOperator,
    WrongTarget,
    authorise_operator,
    build_allowlist,
)
from meshagent.commands.rejections import REJECTION_REASONS
from meshagent.identity import MeshRoot, NodeIdentity
from meshagent.signing import Signed, sign

from .conftest import APPROVED_SCRIPT, Mesh


def _rejected(policy, command, error, caplog, now=None):
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="meshagent.commands.policy"):
        with pytest.raises(error) as info:
            policy.check(command, now)
    assert info.value.reason in REJECTION_REASONS
    lines = [r.getMessage() for r in caplog.records if "command_rejected" in r.getMessage()]
    assert lines and f"reason={info.value.reason}" in lines[-1]
    return info.value


def test_valid_command_is_admitted_once(mesh: Mesh, seen):
    policy = mesh.policy(seen)
    command = mesh.command("ping", {"echo": "hi"})
    envelope = policy.check(command.to_wire())
    assert envelope.action == "ping" and envelope.args == {"echo": "hi"}
    assert envelope.issuer == mesh.operator.operator_id
    assert seen.get(envelope.id) is not None


@pytest.mark.parametrize("data", [b"", b"\xc1", codec.pack({"cmd": b"x", "op": b"y"}),
                                  codec.pack([1, 2, 3])])
def test_garbage_is_malformed(mesh: Mesh, seen, caplog, data):
    error = _rejected(mesh.policy(seen), data, MalformedCommand, caplog)
    assert error.reason == "malformed" and error.command_id is None


def test_envelope_missing_fields_is_malformed(mesh: Mesh, seen, caplog):
    body = mesh.command().command.value()
    del body["nonce"]
    signed = sign(mesh.operator.key, "command", body)
    error = _rejected(mesh.policy(seen), SignedCommand(signed, mesh.cert.signed),
                      MalformedCommand, caplog)
    assert error.command_id == body["id"]


def test_document_of_another_kind_is_malformed(mesh: Mesh, seen, caplog):
    command = mesh.command()
    relabelled = Signed("node-record", command.command.body, command.command.signer,
                        command.command.signature)
    _rejected(mesh.policy(seen), SignedCommand(relabelled, mesh.cert.signed),
              MalformedCommand, caplog)


def test_tampered_command_is_forged(mesh: Mesh, seen, caplog):
    command = mesh.command("ping")
    body = command.command.value()
    body["action"] = "power"
    body["args"] = {"operation": "shutdown"}
    tampered = Signed("command", codec.pack(body), command.command.signer,
                      command.command.signature)
    error = _rejected(mesh.policy(seen), SignedCommand(tampered, command.operator_cert),
                      ForgedCommand, caplog)
    assert error.reason == "forged" and error.command_id == body["id"]
    assert len(seen) == 0


def test_command_signed_by_a_stranger_claiming_an_operator_id_is_forged(mesh: Mesh, seen,
                                                                         caplog):
    body = mesh.command().command.value()  # issuer = alice's id
    forged = sign(OperatorKey.generate("mallory").key, "command", body)
    _rejected(mesh.policy(seen), SignedCommand(forged, mesh.cert.signed), ForgedCommand, caplog)


def test_operator_certified_by_another_root_is_unknown(mesh: Mesh, seen, caplog):
    stranger = MeshRoot.create()
    rogue = OperatorKey.generate("mallory")
    # Same mesh id, different root key: a self-made certificate.
    fake_root = MeshRoot(mesh.root.mesh_id, stranger.key)
    cert = authorise_operator(fake_root, rogue.public, "mallory", ["*"], 3600)
    error = _rejected(mesh.policy(seen), mesh.command(operator=rogue, cert=cert),
                      UnknownOperator, caplog)
    assert error.reason == "unknown_operator"


def test_certificate_of_another_operator_is_unknown(mesh: Mesh, seen, caplog):
    other, other_cert = mesh.operator_with(["*"])
    command = mesh.command()
    swapped = SignedCommand(command.command, other_cert.signed)
    _rejected(mesh.policy(seen), swapped, UnknownOperator, caplog)


def test_revoked_operator_is_refused(mesh: Mesh, seen, caplog):
    revocations = mesh.root.revoke(node_ids=[mesh.operator.operator_id])
    policy = mesh.policy(seen, revocations=revocations)
    error = _rejected(policy, mesh.command(), OperatorRevoked, caplog)
    assert error.reason == "operator_revoked"


def test_revoking_a_node_serial_does_not_revoke_an_operator(mesh: Mesh, seen):
    revocations = mesh.root.revoke(serials=[mesh.cert.serial])
    mesh.policy(seen, revocations=revocations).check(mesh.command())


def test_expired_operator_certificate_is_refused(mesh: Mesh, seen, caplog):
    key, cert = mesh.operator_with(["*"], lifetime_s=60, now=time.time() - 120)
    error = _rejected(mesh.policy(seen), mesh.command(operator=key, cert=cert),
                      OperatorExpired, caplog)
    assert error.reason == "operator_expired"


def test_action_missing_from_allowlist_is_refused(mesh: Mesh, seen, caplog):
    narrow = build_allowlist(mesh.root, ["inventory"])
    error = _rejected(mesh.policy(seen, allowlist=narrow), mesh.command("ping"),
                      NotAllowlisted, caplog)
    assert error.reason == "not_allowlisted"


def test_node_without_allowlist_runs_nothing(mesh: Mesh, seen, caplog):
    policy = mesh.policy(seen)
    policy.allowlist = None
    _rejected(policy, mesh.command("ping"), NotAllowlisted, caplog)


def test_unapproved_script_is_refused_and_approved_one_admitted(mesh: Mesh, seen, caplog):
    policy = mesh.policy(seen)
    _rejected(policy, mesh.command("script", {"content": b"#!/bin/sh\nrm -rf /\n"}),
              NotAllowlisted, caplog)
    assert policy.check(mesh.command("script", {"content": APPROVED_SCRIPT})).action == "script"


def test_operator_without_the_scope_is_refused(mesh: Mesh, seen, caplog):
    reader, reader_cert = mesh.operator_with(["read"])
    policy = mesh.policy(seen)
    assert policy.check(mesh.command("inventory", operator=reader, cert=reader_cert))
    error = _rejected(policy, mesh.command("power", {"operation": "restart"}, operator=reader,
                                           cert=reader_cert), OutOfScope, caplog)
    assert error.reason == "out_of_scope"


def test_run_scope_grants_exactly_one_action(mesh: Mesh, seen, caplog):
    key, cert = mesh.operator_with(["run:tags"])
    policy = mesh.policy(seen)
    assert policy.check(mesh.command("tags", {"set": {"a": "b"}}, operator=key, cert=cert))
    _rejected(policy, mesh.command("ping", operator=key, cert=cert), OutOfScope, caplog)


def test_command_from_the_future_is_not_yet_valid(mesh: Mesh, seen, caplog):
    command = mesh.command(now=time.time() + 3600)
    error = _rejected(mesh.policy(seen), command, NotYetValid, caplog)
    assert error.reason == "not_yet_valid"


def test_small_clock_skew_is_tolerated(mesh: Mesh, seen):
    mesh.policy(seen, clock_skew_s=30).check(mesh.command(now=time.time() + 10))


def test_expired_command_is_refused(mesh: Mesh, seen, caplog):
    command = mesh.command(ttl=5, now=time.time() - 50)
    error = _rejected(mesh.policy(seen), command, CommandExpired, caplog)
    assert error.reason == "expired" and len(seen) == 0


def test_command_for_another_node_is_wrongly_targeted(mesh: Mesh, seen, caplog):
    other = NodeIdentity.generate()
    error = _rejected(mesh.policy(seen), mesh.command(target=Target.node(other.node_id)),
                      WrongTarget, caplog)
    assert error.reason == "wrong_target"


def test_tag_selector_matches_only_nodes_with_those_tags(mesh: Mesh, seen, caplog):
    policy = mesh.policy(seen)
    assert policy.check(mesh.command(target=Target.tagged({"site": "lab"})))
    _rejected(policy, mesh.command(target=Target.tagged({"site": "office"})), WrongTarget,
              caplog)
    assert policy.check(mesh.command(target=Target.all()))


def test_command_naming_another_mesh_is_wrongly_targeted(mesh: Mesh, seen, caplog):
    body = mesh.command().command.value()
    body["mesh"] = MeshRoot.create().mesh_id
    signed = sign(mesh.operator.key, "command", body)
    _rejected(mesh.policy(seen), SignedCommand(signed, mesh.cert.signed), WrongTarget, caplog)


def test_replayed_command_is_refused(mesh: Mesh, seen, caplog):
    policy = mesh.policy(seen)
    command = mesh.command()
    policy.check(command)
    error = _rejected(policy, command, ReplayedCommand, caplog)
    assert error.reason == "replayed"


def test_replay_after_restart_is_refused(mesh: Mesh, caplog):
    command = mesh.command()
    first = mesh.open_seen()
    mesh.policy(first).check(command.to_wire())
    first.close()
    reopened = mesh.open_seen()
    try:
        _rejected(mesh.policy(reopened), command.to_wire(), ReplayedCommand, caplog)
    finally:
        reopened.close()


def test_first_failing_check_decides_the_reason(mesh: Mesh, seen, caplog):
    # Expired, out of scope, wrongly targeted AND forged: forged is reported.
    key, cert = mesh.operator_with(["read"])
    command = mesh.command("power", {"operation": "restart"}, operator=key, cert=cert, ttl=1,
                           now=time.time() - 100,
                           target=Target.node(NodeIdentity.generate().node_id))
    body = command.command.value()
    body["args"] = {"operation": "shutdown"}
    tampered = Signed("command", codec.pack(body), command.command.signer,
                      command.command.signature)
    _rejected(mesh.policy(seen), SignedCommand(tampered, cert.signed), ForgedCommand, caplog)
    # Untampered: the scope check comes before the time window and the target.
    _rejected(mesh.policy(seen), command, OutOfScope, caplog)


def test_rejection_log_is_rate_limited_per_reason_and_issuer(mesh: Mesh, seen, caplog):
    policy = mesh.policy(seen)
    with caplog.at_level(logging.WARNING, logger="meshagent.commands.policy"):
        for _ in range(5):
            with pytest.raises(CommandRejected):
                policy.check(mesh.command(ttl=1, now=time.time() - 100))
    assert len([r for r in caplog.records if "command_rejected" in r.getMessage()]) == 1


def test_newer_allowlist_replaces_older_but_not_the_reverse(mesh: Mesh, seen):
    policy = mesh.policy(seen, allowlist=None)
    v1 = build_allowlist(mesh.root, ["ping"])
    v2 = build_allowlist(mesh.root, ["ping", "inventory"], previous=v1)
    assert policy.update_allowlist(v2.to_wire())
    assert not policy.update_allowlist(v1.to_wire())
    assert policy.allowlist is not None and policy.allowlist.version == 2


@given(st.binary(max_size=600))
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_bytes_are_only_ever_rejected_typed(mesh: Mesh, seen, data):
    with pytest.raises(CommandRejected):
        mesh.policy(seen).check(data)


@given(st.integers(0, 2000), st.integers(0, 255))
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_flipped_byte_of_a_valid_command_is_rejected(mesh: Mesh, seen, position, value):
    wire = bytearray(mesh.command("ping", now=time.time()).to_wire())
    position %= len(wire)
    if wire[position] == value:
        return
    wire[position] = value
    try:
        mesh.policy(seen).check(bytes(wire))
    except CommandRejected:
        return
    pytest.fail("a modified command was admitted")


def test_allowlist_of_the_same_version_does_not_replace_the_held_one(mesh: Mesh, seen):
    policy = mesh.policy(seen, allowlist=None)
    held = build_allowlist(mesh.root, ["ping"], version=3)
    assert policy.update_allowlist(held.signed)
    assert not policy.update_allowlist(build_allowlist(mesh.root, ["power"], version=3).signed)
    assert policy.allowlist == held


def test_allowlist_not_signed_by_the_root_is_refused_and_logged(mesh: Mesh, seen, caplog):
    policy = mesh.policy(seen)
    impostor = MeshRoot(mesh.root.mesh_id, MeshRoot.create().key)
    wide = build_allowlist(impostor, ["ping", "power", "script"], version=99)
    with caplog.at_level(logging.WARNING, logger="meshagent.commands.policy"):
        with pytest.raises(AllowlistError):
            policy.update_allowlist(wide.to_wire())
    assert any("allowlist_rejected" in r.getMessage() for r in caplog.records)
    assert policy.allowlist == mesh.allowlist
