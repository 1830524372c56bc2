"""``tags``: set and remove this node's tags (the labels commands can target).

``args``: ``{"set": {key: value, ...}, "remove": [key, ...]}`` (either may be absent; a key
both set and removed is an error). ``TagStore`` holds the node's tags; after a change it
calls ``on_change(new_tags)``, which the agent uses to bump and gossip its membership
record. The command's policy check reads the same store to match tag selectors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from meshagent.commands.actions.base import ActionContext, ActionError, ActionSpec
from meshagent.log import get_logger

__all__ = ["ACTION", "TagStore", "MAX_TAGS"]

log = get_logger(__name__)

MAX_TAGS = 64
_MAX_VALUE = 256
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,62}$")


class TagStore:
    """This node's tags. ``on_change`` is called with a copy after every change."""

    def __init__(self, tags: Mapping[str, str] | None = None,
                 on_change: Callable[[dict[str, str]], None] | None = None) -> None:
        self._tags = dict(tags or {})
        self.on_change = on_change

    def current(self) -> dict[str, str]:
        return dict(self._tags)

    def apply(self, set_tags: Mapping[str, str], remove: list[str]) -> dict[str, str]:
        """Validate, apply all at once and notify; ActionError leaves the tags unchanged."""
        both = set(set_tags) & set(remove)
        if both:
            raise ActionError("bad_args", f"tags both set and removed: {sorted(both)}")
        for key, value in set_tags.items():
            if not (isinstance(key, str) and _KEY_RE.match(key)):
                raise ActionError("bad_args", f"malformed tag key {key!r}")
            if not (isinstance(value, str) and len(value) <= _MAX_VALUE):
                raise ActionError("bad_args", f"tag {key}: value must be text of at most "
                                  f"{_MAX_VALUE} characters")
        updated = {k: v for k, v in self._tags.items() if k not in remove}
        updated.update(set_tags)
        if len(updated) > MAX_TAGS:
            raise ActionError("too_many_tags", f"a node has at most {MAX_TAGS} tags")
        if updated != self._tags:
            self._tags = updated
            log.event("node_tags_changed", tags=",".join(f"{k}={v}" for k, v in
                                                         sorted(updated.items())))
            if self.on_change is not None:
                self.on_change(dict(updated))
        return dict(updated)


async def run(args: Mapping[str, Any], ctx: ActionContext) -> dict[str, Any]:
    set_tags = args.get("set", {})
    remove = args.get("remove", [])
    if not isinstance(set_tags, dict) or not (
            isinstance(remove, list) and all(isinstance(k, str) for k in remove)):
        raise ActionError("bad_args", "set must be a map and remove a list of keys")
    return {"tags": ctx.tags.apply(set_tags, remove)}


ACTION = ActionSpec("tags", "tags", run)
