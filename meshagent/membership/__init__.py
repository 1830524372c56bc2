"""Who is in the mesh, and in which state: SWIM + Lifeguard over sealed datagrams.

Contract (what the agent, routing, election and the AMT bridge rely on):

* ``Membership(identity, certificate, trust, transport, profile=Profile.LAN, seeds=(),
  advertise=(), record_fields=None, revocations=None, documents=None, redeemed=None)``;
  ``await start()`` listens and joins the seeds, ``await join(addresses)`` joins more
  (discovery calls it), ``await leave()`` says goodbye and stops, ``await stop()`` stops
  silently.
* ``members()`` -> list of immutable ``Member`` (node_id, state, record, address,
  last_seen, incarnation, state_since, is_self); ``member(node_id)``.
* ``on_change(callback(member, old_state, new_state))`` (plain or async callback,
  ``old_state`` None for a new member) and ``async for change in changes()``.
* ``update_record(push=False, **fields)`` re-signs and gossips our ``NodeRecord``
  (``push=True`` also sends it to every live member at once, for urgent news);
  ``mark_asleep(node_id, "asleep"|"off", record)`` for the AMT bridge;
  ``documents`` (the root-signed revocation list and allowlist, ``trustdocs``; adopted
  ones spread through the mesh), ``offer_document(kind, wire, source)``,
  ``update_revocations(list)``; ``redeemed`` (join tokens seen redeemed; a token of two
  nodes is burnt everywhere); ``report_connection_lost(node_id)`` for session layers
  whose TCP connection to a member broke; ``accept_record(wire)`` for discovery.
* ``counters``: dropped input by reason (``dropped_flood``, ``dropped_auth``,
  ``dropped_bad_signature``, ``dropped_revoked``, ``dropped_unknown_type``, ...) and
  protocol events (``refutations``, ``crashes_detected``, ``syncs``).

How it works: ``swim.py`` (probing, suspicion, gossip), ``streams.py`` (TCP state
exchange, pings, liveness watches), ``sealing.py`` (pairwise keys), ``messages.py``
(datagram messages), ``broadcast.py``, ``suspicion.py``, ``ratelimit.py``, ``state.py``.
Timing comes from ``meshagent.profiles.Profile``.
"""

from meshagent.membership.state import Member, MemberChange, MemberState
from meshagent.membership.swim import ChangeCallback, Membership
from meshagent.profiles import Profile

__all__ = ["Membership", "Member", "MemberState", "MemberChange", "ChangeCallback", "Profile"]
