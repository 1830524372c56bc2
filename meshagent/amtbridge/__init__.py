"""The agent's use of Intel AMT: guest accounts, 3PDS records, sleeping peers, wake.

Contract (what the agent, the leader's inventory, the ``wake`` action and tests use):

* ``AmtBridge(identity, membership, router, endpoint=AmtEndpoint|None, policy=AmtPolicy(),
  settings=BridgeSettings(), grants_dir=None, client_factory=AmtClient)``;
  ``await start()`` / ``await stop()``. Without an endpoint the node has no AMT of its own
  but still checks and wakes its peers'.
* ``await prepare_for_sleep()`` writes the record block just before the host sleeps;
  ``await write_record(reason)``; ``await rotate(reason)``.
* ``await check(node_id) -> SleepingNode | None``; ``await wake(node_id) -> dict`` (raises
  ``NoGrant`` / ``WakeFailed``); ``sleeping(node_id)``; ``grant_for(node_id)``;
  ``status()``; ``counters``.
* ``inventory_record(member) -> bytes | None``: the node-record wire read from a sleeping
  member's AMT, for the leader's inventory (``uplink.NodeReport.record``).
* Sleeping members carry a ``SleepingNode`` as ``Member.power_record``.

Parts: ``policy`` (realms), ``accounts`` (the device's ACL), ``grant`` (sealed credentials),
``amtrecord`` (the signed 3PDS record), ``storage`` (the 3PDS application and block),
``bridge`` (the orchestration), ``configured`` (built from ``[amt]``), ``errors``; ``lab``
runs agents with software AMT devices behind the web service (tests, benchmark, demos).
"""

from meshagent.amtbridge.amtrecord import AMT_RECORD_KIND, AmtRecord, verify_amt_record
from meshagent.amtbridge.bridge import (
    AMT_CHANNEL,
    AmtBridge,
    AmtEndpoint,
    BridgeSettings,
    SleepingNode,
    inventory_record,
)
from meshagent.amtbridge.errors import (
    AmtBridgeError,
    AmtRecordError,
    BadRecordSignature,
    GarbageRecord,
    GrantError,
    NoGrant,
    WakeFailed,
)
from meshagent.amtbridge.grant import GRANT_KIND, AmtGrant
from meshagent.amtbridge.policy import GUEST_REALMS, WAKER_REALMS, AmtPolicy

__all__ = [
    "AMT_CHANNEL", "AMT_RECORD_KIND", "GRANT_KIND", "GUEST_REALMS", "WAKER_REALMS",
    "AmtBridge", "AmtBridgeError", "AmtEndpoint", "AmtGrant", "AmtPolicy", "AmtRecord",
    "AmtRecordError", "BadRecordSignature", "BridgeSettings", "GarbageRecord", "GrantError",
    "NoGrant", "SleepingNode", "WakeFailed", "inventory_record", "verify_amt_record",
]
