"""The actions an agent can run, one module each, and the registry of built-in ones.

``BUILTIN_ACTIONS`` maps an action name to its ``ActionSpec``. The policy uses it to find
the scope an action needs; the executor to run it. An action must also be on the mesh's
signed allowlist to run at all.
"""

from __future__ import annotations

from meshagent.commands.actions import inventory, ping, power, script, tags, wake
from meshagent.commands.actions.base import ActionContext, ActionError, ActionSpec

__all__ = ["BUILTIN_ACTIONS", "ActionContext", "ActionError", "ActionSpec"]

BUILTIN_ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec for spec in (ping.ACTION, inventory.ACTION, script.ACTION, power.ACTION,
                                 tags.ACTION, wake.ACTION)
}
