"""A small mesh for command tests: root, one operator, one node, allowlist, stores.

Power actions are forced into dry-run for every test here, whatever the caller passes:
nothing in this suite may suspend, restart or power off the machine running it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from meshagent.commands import (
    BUILTIN_ACTIONS,
    ActionContext,
    Allowlist,
    CommandExecutor,
    CommandPolicy,
    OperatorCertificate,
    OperatorKey,
    PowerControl,
    SeenCommands,
    SignedCommand,
    TagStore,
    Target,
    authorise_operator,
    build_allowlist,
    sign_command,
)
from meshagent.commands.actions.power import DRY_RUN_ENV
from meshagent.identity import MembershipCertificate, MeshRoot, NodeIdentity

APPROVED_SCRIPT = b"#!/bin/sh\necho approved \"$@\"\n"


@dataclass
class Mesh:
    root: MeshRoot
    operator: OperatorKey
    cert: OperatorCertificate
    node: NodeIdentity
    allowlist: Allowlist
    seen_path: Path
    tags: TagStore
    power: PowerControl
    changes: list[dict[str, str]] = field(default_factory=list)

    def command(self, action: str = "ping", args: Mapping[str, Any] | None = None, *,
                target: Target | None = None, ttl: float = 600.0, now: float | None = None,
                operator: OperatorKey | None = None,
                cert: OperatorCertificate | None = None) -> SignedCommand:
        return sign_command(operator or self.operator, cert or self.cert,
                            target or Target.node(self.node.node_id), action, args or {},
                            ttl, now=now)

    def node_certificate(self) -> MembershipCertificate:
        """The node's certificate from this mesh's root: what its results are checked
        against."""
        return self.root.issue_certificate(self.node.sign_public, self.node.dh_public,
                                           ["agent"], "host", 3600)

    def operator_with(self, scopes: list[str], lifetime_s: float = 3600.0,
                      now: float | None = None) -> tuple[OperatorKey, OperatorCertificate]:
        key = OperatorKey.generate("bob")
        return key, authorise_operator(self.root, key.public, "bob", scopes, lifetime_s, now)

    def open_seen(self) -> SeenCommands:
        return SeenCommands(self.seen_path)

    def policy(self, seen: SeenCommands, **kwargs: Any) -> CommandPolicy:
        kwargs.setdefault("allowlist", self.allowlist)
        return CommandPolicy(self.root.trust, self.node.node_id, seen, tags=self.tags.current,
                             **kwargs)

    def context(self, allowlist: Allowlist | None = None) -> ActionContext:
        held = allowlist or self.allowlist
        return ActionContext(self.node.node_id, lambda: held, self.power, self.tags,
                             max_output_bytes=4096, script_timeout_s=10.0)

    def executor(self, seen: SeenCommands, **kwargs: Any) -> CommandExecutor:
        return CommandExecutor(self.node.sign_key, self.node.node_id, seen, self.context(),
                               **kwargs)


@pytest.fixture(autouse=True)
def _power_dry_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DRY_RUN_ENV, "1")


@pytest.fixture
def mesh(tmp_path: Path) -> Mesh:
    root = MeshRoot.create()
    operator = OperatorKey.generate("alice")
    cert = authorise_operator(root, operator.public, "alice", ["*"], 3600.0,
                              now=time.time() - 60)
    allowlist = build_allowlist(root, sorted(BUILTIN_ACTIONS),
                                {"approved.sh": APPROVED_SCRIPT})
    mesh = Mesh(root, operator, cert, NodeIdentity.generate(), allowlist,
                tmp_path / "seen.db", TagStore({"site": "lab"}), PowerControl(dry_run=True))
    mesh.tags.on_change = mesh.changes.append
    return mesh


@pytest.fixture
def seen(mesh: Mesh) -> Iterator[SeenCommands]:
    store = mesh.open_seen()
    yield store
    store.close()
