from __future__ import annotations

import pytest

from meshagent.commands import CommandResult, ResultError, ResultStatus
from meshagent.identity import MeshRoot, NodeIdentity
from meshagent.signing import Signed


def _cert(root, node):
    return root.issue_certificate(node.sign_public, node.dh_public, ["agent"], "host", 3600)


def _result(node, status=ResultStatus.OK):
    return CommandResult(b"\x01" * 16, node.node_id, status, {"pong": True}, 1.0, 2.0)


def test_result_signed_by_the_node_verifies_against_its_certificate():
    root, node = MeshRoot.create(), NodeIdentity.generate()
    result = _result(node).sign(node.sign_key)
    again = CommandResult.verify(result.to_wire(), _cert(root, node))
    assert again == result and again.status is ResultStatus.OK


def test_result_checked_against_another_nodes_certificate_is_refused():
    root, node, other = MeshRoot.create(), NodeIdentity.generate(), NodeIdentity.generate()
    with pytest.raises(ResultError):
        CommandResult.verify(_result(node).sign(node.sign_key).signed, _cert(root, other))


def test_result_about_another_node_is_refused():
    root, node, other = MeshRoot.create(), NodeIdentity.generate(), NodeIdentity.generate()
    lying = _result(other).sign(node.sign_key)
    with pytest.raises(ResultError):
        CommandResult.verify(lying.signed, _cert(root, node))


def test_tampered_result_is_refused():
    root, node = MeshRoot.create(), NodeIdentity.generate()
    signed = _result(node, ResultStatus.ERROR).sign(node.sign_key).signed
    good = _result(node).sign(node.sign_key).signed
    with pytest.raises(ResultError):
        CommandResult.verify(Signed(signed.kind, good.body, signed.signer, signed.signature),
                             _cert(root, node))
    with pytest.raises(ResultError):
        CommandResult.verify(b"\x00", _cert(root, node))


def test_unsigned_result_cannot_be_shipped():
    with pytest.raises(ResultError):
        _result(NodeIdentity.generate()).to_wire()
