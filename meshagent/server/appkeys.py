"""Typed keys for what the aiohttp application carries (shared by app, api and ws)."""

from __future__ import annotations

from aiohttp import web

from meshagent.server.auth import FailureThrottle, SessionStore
from meshagent.server.service import MeshService

__all__ = ["SERVICE", "SESSIONS", "SERVER_CERT_SHA256", "THROTTLE"]

SERVICE = web.AppKey("service", MeshService)
SESSIONS = web.AppKey("sessions", SessionStore)
# SHA-256 of the service's TLS certificate (DER); empty when serving plain HTTP (tests).
SERVER_CERT_SHA256 = web.AppKey("server_cert_sha256", bytes)
THROTTLE = web.AppKey("throttle", FailureThrottle)
