"""Join tokens redeemed by two nodes are burnt: both refused, whatever order they came
in, with both certificates kept (and saved) as evidence another member can check."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshagent.identity import (
    JoinTokenReused,
    MembershipCertificate,
    MeshRoot,
    NodeIdentity,
    RedeemedTokens,
    redeem_join_token,
)


def _two_redemptions(root: MeshRoot) -> tuple[bytes, MembershipCertificate,
                                             MembershipCertificate]:
    token = root.issue_join_token(["member"], lifetime_s=600)
    first, second = (redeem_join_token(token.encode(), NodeIdentity.generate(), name,
                                       root.trust).certificate for name in ("a", "b"))
    return token.token_id, first, second


@pytest.mark.parametrize("order", ["first-then-second", "second-then-first"])
def test_token_seen_with_two_nodes_is_burnt_for_both(order: str) -> None:
    root = MeshRoot.create()
    token_id, first, second = _two_redemptions(root)
    pair = [first, second] if order == "first-then-second" else [second, first]
    redeemed = RedeemedTokens()
    burnt: list[bytes] = []
    redeemed.on_burnt(burnt.append)
    MembershipCertificate.verify(pair[0], root.trust, redeemed=redeemed)
    with pytest.raises(JoinTokenReused):
        MembershipCertificate.verify(pair[1], root.trust, redeemed=redeemed)
    with pytest.raises(JoinTokenReused):
        MembershipCertificate.verify(pair[0], root.trust, redeemed=redeemed)
    assert burnt == [token_id] and redeemed.is_burnt(token_id)


def test_evidence_burns_the_token_at_a_member_that_saw_neither_node() -> None:
    root = MeshRoot.create()
    token_id, first, second = _two_redemptions(root)
    witness = RedeemedTokens()
    witness.merge([first.to_wire()], root.trust)
    with pytest.raises(JoinTokenReused):
        witness.claim(second)
    bystander = RedeemedTokens()
    refused = bystander.merge([*witness.burnt_evidence(), b"junk"], root.trust)
    assert refused == [second.node_id] and bystander.is_burnt(token_id)


def test_burnt_tokens_are_saved_as_they_change_and_read_back(tmp_path: Path) -> None:
    root = MeshRoot.create()
    token_id, first, second = _two_redemptions(root)
    path = tmp_path / "redeemed-tokens"
    redeemed = RedeemedTokens(path=path)
    redeemed.claim(first)
    with pytest.raises(JoinTokenReused):
        redeemed.claim(second)
    reloaded = RedeemedTokens.load(path)
    assert reloaded.is_burnt(token_id)
    assert set(reloaded.burnt_evidence()) == {first.to_wire(), second.to_wire()}
    with pytest.raises(JoinTokenReused):
        reloaded.claim(first)
