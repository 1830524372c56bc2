"""Building the agent's ``AmtBridge`` from its ``[amt]`` configuration section.

Reads the administrator password file (it must exist when ``amt.address`` is set; it is
never logged) and checks the values the config parser cannot (the pin's form). Without an
address the bridge has no AMT of its own but still serves its peers.
"""

from __future__ import annotations

from pathlib import Path

from meshagent.amtbridge.bridge import AmtBridge, AmtEndpoint, BridgeSettings, MessageRouter
from meshagent.amtbridge.policy import AmtPolicy
from meshagent.config import AgentConfig, parse_host_port
from meshagent.errors import ConfigError
from meshagent.identity import NodeIdentity
from meshagent.membership import Membership

__all__ = ["GRANTS_DIR", "bridge_from_config", "endpoint_from_config"]

GRANTS_DIR = "amt-grants"
HTTP_PORT = 16992
TLS_PORT = 16993


def endpoint_from_config(config: AgentConfig) -> AmtEndpoint | None:
    amt = config.amt
    if not amt.address:
        return None
    host, port = parse_host_port(amt.address, TLS_PORT if amt.tls else HTTP_PORT,
                                 "amt.address")
    try:
        pin = bytes.fromhex(amt.cert_sha256)
    except ValueError:
        pin = b"-"
    if len(pin) not in (0, 32):
        raise ConfigError("amt.cert_sha256: expected 64 hex digits or nothing")
    password_file = amt.admin_password_file
    if str(password_file) in ("", "."):
        password_file = config.node.state_dir / "amt-admin.password"
    try:
        password = Path(password_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"amt.admin_password_file: cannot read {password_file}: "
                          f"{exc.strerror}") from None
    if not password:
        raise ConfigError(f"amt.admin_password_file: {password_file} is empty")
    return AmtEndpoint(host, password, amt.admin_user, port, amt.tls, pin)


def bridge_from_config(config: AgentConfig, identity: NodeIdentity, membership: Membership,
                       router: MessageRouter) -> AmtBridge:
    amt = config.amt
    try:
        policy = AmtPolicy(amt.share_wake, amt.guest_user, amt.waker_user)
    except ValueError as exc:
        raise ConfigError(f"amt.guest_user/amt.waker_user: {exc}") from None
    settings = BridgeSettings(record_interval_s=amt.record_interval_s,
                              probe_timeout_s=amt.probe_timeout_s,
                              request_timeout_s=min(2.0, amt.probe_timeout_s))
    return AmtBridge(identity, membership, router, endpoint=endpoint_from_config(config),
                     policy=policy, settings=settings,
                     grants_dir=config.node.state_dir / GRANTS_DIR)
