"""A small client of the web service's REST API, for the ``meshctl`` verbs.

Settings come from options or the environment: ``--server`` / ``MESHCTL_SERVER``
(``https://host:8443``), ``--pin`` / ``MESHCTL_PIN`` (SHA-256 of the service certificate,
as ``meshagent server init`` printed it), ``--token`` / ``MESHCTL_TOKEN`` (the admin
password or a session token). The certificate is checked against the pin before the
token is sent; no CA is consulted (the service's certificate is self-signed).

Blocking (stdlib ``http.client``): each verb makes a handful of requests.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any

from meshagent.errors import ConfigError, MeshError
from meshagent.trustdocs import DOCUMENT_KINDS, peek_document

__all__ = ["ApiClient", "ApiError", "PinMismatch", "add_server_options", "client_from_args"]

TIMEOUT_S = 30.0


class ApiError(MeshError):
    """The service answered with an error; ``code`` is its error code."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


class PinMismatch(MeshError):
    """The service's certificate is not the pinned one."""


def add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=os.environ.get("MESHCTL_SERVER"),
                        help="web service URL (env MESHCTL_SERVER)")
    parser.add_argument("--pin", default=os.environ.get("MESHCTL_PIN"),
                        help="SHA-256 of the service certificate (env MESHCTL_PIN)")
    parser.add_argument("--token", default=os.environ.get("MESHCTL_TOKEN"),
                        help="admin password or session token (env MESHCTL_TOKEN)")


def client_from_args(args: argparse.Namespace) -> ApiClient:
    if not args.server:
        raise ConfigError("no web service given: --server or MESHCTL_SERVER")
    from meshagent.server.tls import pin_from_text

    pin = pin_from_text(args.pin) if args.pin else None
    if args.server.startswith("https://") and pin is None:
        raise ConfigError("an https service needs its certificate pin: --pin or MESHCTL_PIN")
    return ApiClient(args.server, pin, args.token)


@dataclass
class ApiClient:
    base_url: str
    pin: bytes | None
    token: str | None = None

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(f"--server: {self.base_url!r} is not an http(s) URL")
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port or (443 if self._https else 80)

    def _connection(self) -> http.client.HTTPConnection:
        if not self._https:
            return http.client.HTTPConnection(self._host, self._port, timeout=TIMEOUT_S)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # trust comes from the pin, checked below
        conn = http.client.HTTPSConnection(self._host, self._port, timeout=TIMEOUT_S,
                                           context=context)
        conn.connect()
        der = conn.sock.getpeercert(binary_form=True) if conn.sock else None
        if der is None or self.pin is None or not hmac.compare_digest(
                hashlib.sha256(der).digest(), self.pin):
            conn.close()
            raise PinMismatch(f"{self.base_url}: certificate does not match the pinned SHA-256")
        return conn

    def request(self, method: str, path: str, body: Any = None,
                query: dict[str, Any] | None = None) -> Any:
        """The decoded JSON answer; ApiError for an error status."""
        params = {k: v for k, v in (query or {}).items() if v is not None}
        if params:
            path = f"{path}?{urllib.parse.urlencode(params)}"
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = self._connection()
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except OSError as exc:
            raise ApiError(0, "unreachable", f"{self.base_url}: {exc}") from exc
        finally:
            conn.close()
        try:
            value = json.loads(raw) if raw else None
        except ValueError:
            value = None
        if response.status >= 400:
            error = value if isinstance(value, dict) else {}
            raise ApiError(response.status, str(error.get("error", "http_error")),
                           str(error.get("detail", raw[:200].decode(errors="replace"))))
        return value

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body=body)

    # --- the calls the verbs make -------------------------------------------------------

    def nodes(self, **filters: Any) -> list[dict[str, Any]]:
        return self.get("/api/nodes", **filters)

    def submit_command(self, wire: bytes) -> dict[str, Any]:
        return self.post("/api/commands", {"command": base64.b64encode(wire).decode()})

    def command(self, command_id: str) -> dict[str, Any]:
        return self.get(f"/api/commands/{command_id}")

    def results(self, **filters: Any) -> list[dict[str, Any]]:
        return self.get("/api/results", **filters)

    def leaders(self) -> list[dict[str, Any]]:
        return self.get("/api/leaders")

    def meshes(self) -> list[dict[str, Any]]:
        return self.get("/api/meshes")

    def audit(self, **filters: Any) -> list[dict[str, Any]]:
        return self.get("/api/audit", **filters)

    def push_document(self, kind: str, wire: bytes) -> bool:
        """Upload a root-signed document (``trustdocs`` kind: revocations, allowlist) for
        the mesh it names; True if the service adopted it (it then reaches every agent
        through the mesh's leader), False if it already holds that version. ApiError
        otherwise (403 untrusted_<kind> / foreign_<kind>, 409 stale_<kind>, ...)."""
        mesh_id = peek_document(DOCUMENT_KINDS[kind], wire)[1]
        answer = self.post(f"/api/meshes/{mesh_id.hex()}/documents",
                           {"kind": kind, "doc": base64.b64encode(wire).decode()})
        return bool(answer.get("adopted"))
