"""The scale harness on a small mesh, with simulated and with real pair keys, and the
lean mode's parts (shared values, slotted peers, counter replay windows)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagent import core
from meshagent.core.pyref import ReplayWindow as ReferenceWindow
from meshagent.identity import MeshRoot
from meshagent.membership.sealing import SealError
from meshagent.membership.simulation import (
    CounterWindow,
    LeanSimulatedKeys,
    SimulationCache,
    issue_member,
    run_scale,
)
from meshagent.membership.swim import Membership
from meshagent.profiles import Profile
from meshagent.record import RecordVerifier


@pytest.mark.parametrize("real_keys", [False, True])
def test_small_mesh_converges_detects_a_crash_and_spreads_an_update(real_keys: bool) -> None:
    result = run_scale(25, profile=Profile.LAN, real_keys=real_keys, limit_s=60)
    row = result.to_dict()
    assert 0 < row["join_s"] < 5
    assert 0 < row["failure_s"] < 2  # crash: refused port, no suspicion timeout
    assert 0 < row["update_s"] < 2
    assert row["join_rounds"] == pytest.approx(row["join_s"] / Profile.LAN.probe_interval_s,
                                               abs=0.1)
    assert row["peak_rss_mib"] > 0
    assert result.counters.get("internal_errors", 0) == 0


def test_lean_mode_converges_like_the_full_one() -> None:
    lean = run_scale(30, lean=True, limit_s=60)
    full = run_scale(30, lean=False, limit_s=60)
    assert lean.lean and not full.lean
    interval = Profile.LAN.probe_interval_s
    for phase in ("join_s", "failure_s", "update_s"):
        assert getattr(lean, phase) == pytest.approx(getattr(full, phase), abs=interval)
    assert lean.datagrams == pytest.approx(full.datagrams, rel=0.1)
    for result in (lean, full):
        assert result.counters.get("internal_errors", 0) == 0
        assert result.counters.get("dropped_replay", 0) == 0


@pytest.fixture
def mesh() -> tuple:
    """Two lean members a, b (a holds b's certificate), their cache and a third member."""
    root = MeshRoot.create()
    shared = SimulationCache()
    members = [issue_member(root, name) for name in ("a", "b", "c")]
    a, b = (LeanSimulatedKeys(identity, cert, RecordVerifier(root.trust), lambda: None, shared)
            for identity, cert in members[:2])
    a.learn(members[1][1])
    return a, b, shared, members[2][1]


def _reason(keys: LeanSimulatedKeys, datagram: bytes) -> str:
    with pytest.raises(SealError) as caught:
        keys.open(datagram)
    return caught.value.reason


def test_lean_keys_drop_a_replayed_datagram(mesh: tuple) -> None:
    a, b, _, _ = mesh
    first, second, third, fourth = (a.seal(b.node_id, bytes([i])) for i in range(4))
    assert b.open(first) == (a.node_id, b"\0")  # the real window checks the first
    assert isinstance(b._peers[a.node_id].window, CounterWindow)
    assert b.open(second) == (a.node_id, b"\1")
    assert _reason(b, first) == "replay"
    assert _reason(b, second) == "replay"
    assert b.open(fourth) == (a.node_id, b"\3")
    assert b.open(third) == (a.node_id, b"\2")  # same-instant swap on the memory network
    assert _reason(b, third) == "replay"


def test_lean_keys_accept_a_burst_delivered_out_of_order(mesh: tuple) -> None:
    a, b, _, _ = mesh
    burst = [a.seal(b.node_id, bytes([i])) for i in range(200)]  # one instant's fetch replies
    assert b.open(burst[0])[1] == b"\0"
    for datagram in reversed(burst[1:]):  # the timer heap may deliver them in any order
        b.open(datagram)
    assert all(_reason(b, datagram) == "replay" for datagram in burst)


def test_lean_keys_make_peer_state_on_first_use_and_share_digests(mesh: tuple) -> None:
    a, b, shared, c_cert = mesh
    b.learn(c_cert)
    assert b.knows(c_cert.node_id)
    assert dict.get(b._peers, c_cert.node_id) is c_cert  # no per-peer state yet
    b.open(a.seal(b.node_id, b"hello"))  # b learns a's attached certificate, then uses it
    peer = b._peers[a.node_id]
    assert peer.cert_digest is shared.certificate_digest(peer.cert)
    assert not hasattr(peer, "__dict__")  # slotted per-peer state
    assert b.open(a.seal(b.node_id, b"again")) == (a.node_id, b"again")


def test_simulated_members_hook_the_address_lookup() -> None:
    # Lean mode interns addresses by overriding this method: it must still exist.
    assert callable(vars(Membership).get("_address_of"))
    shared = SimulationCache()
    assert shared.address(("10.0.0.1", 7946)) is shared.address(("10.0.0.1", 7946))


@given(st.lists(st.integers(0, 3 * CounterWindow.SPAN), min_size=1, max_size=60))
def test_counter_window_agrees_with_the_reference_replay_window(counters: list) -> None:
    window, reference = CounterWindow(), ReferenceWindow()
    window.check_and_update(counters[0])
    reference.check_and_update(counters[0])
    edge = max(counters) - CounterWindow.SPAN  # the oldest counter still in the window
    for counter in counters[1:] + [c for c in (edge, edge - 1) if c >= 0]:
        fresh = reference.accepts(counter)
        assert window.accepts(counter) == fresh
        if fresh:
            window.check_and_update(counter)
            reference.check_and_update(counter)
        else:
            with pytest.raises(core.ReplayError):
                window.check_and_update(counter)


def test_counter_window_refuses_counters_past_the_rekey_limit() -> None:
    window = CounterWindow()
    window.check_and_update(core.REKEY_AFTER_MESSAGES - 1)
    assert not window.accepts(core.REKEY_AFTER_MESSAGES)
