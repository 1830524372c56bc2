"""The scale harness on a small mesh, with simulated and with real pair keys."""

from __future__ import annotations

import pytest

from meshagent.membership.simulation import run_scale
from meshagent.profiles import Profile


@pytest.mark.parametrize("real_keys", [False, True])
def test_small_mesh_converges_detects_a_crash_and_spreads_an_update(real_keys: bool) -> None:
    result = run_scale(25, profile=Profile.LAN, real_keys=real_keys, limit_s=60)
    row = result.to_dict()
    assert 0 < row["join_s"] < 5
    assert 0 < row["failure_s"] < 2  # crash: refused port, no suspicion timeout
    assert 0 < row["update_s"] < 2
    assert row["join_rounds"] == pytest.approx(row["join_s"] / Profile.LAN.probe_interval_s,
                                               abs=0.1)
    assert result.counters.get("internal_errors", 0) == 0
