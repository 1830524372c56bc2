"""The device side of digest authentication: nonces, stale nonces, nc replay, verification.

A nonce is good for ``nonce_lifetime_s`` seconds and ``max_uses`` signed requests; after
that a request signed with it gets a fresh challenge with ``stale=true`` (the client signs
again without asking the user). Each (nonce, nc) pair is accepted once, so a captured
request cannot be replayed; nc may arrive out of order (concurrent connections) but never
twice. The nonce table is bounded: the oldest nonces are forgotten first.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from amt.wsman.digest import expected_response, parse_header

__all__ = ["DigestGuard", "Verdict"]

MAX_NONCES = 1024


@dataclass
class _Nonce:
    issued: float
    seen: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one request: the user, or why there is none."""

    user: str | None
    stale: bool = False
    reason: str = ""


class DigestGuard:
    """Issues challenges and verifies Authorization headers for one realm."""

    def __init__(self, realm: str, secret_of: Callable[[str], str | None],
                 nonce_lifetime_s: float = 300.0, max_uses: int = 100_000) -> None:
        self.realm = realm
        self._secret_of = secret_of  # username -> HA1, or None if unknown
        self.nonce_lifetime_s = nonce_lifetime_s
        self.max_uses = max_uses
        self._nonces: OrderedDict[str, _Nonce] = OrderedDict()
        self.challenges_issued = 0  # counters for tests and the benchmark
        self.last_nc = 0

    def challenge(self, stale: bool = False) -> str:
        nonce = secrets.token_hex(16)
        self.challenges_issued += 1
        self._nonces[nonce] = _Nonce(time.monotonic())
        while len(self._nonces) > MAX_NONCES:
            self._nonces.popitem(last=False)
        return (f'Digest realm="{self.realm}", nonce="{nonce}", '
                f'stale="{"true" if stale else "false"}", qop="auth"')

    def expire_nonces(self) -> None:
        """Make every issued nonce stale (tests drive the stale path with this)."""
        self._nonces.clear()

    def verify(self, header: str | None, method: str) -> Verdict:
        if not header:
            return Verdict(None, reason="unsigned")
        params = parse_header(header)
        if params is None:
            return Verdict(None, reason="not a digest header")
        try:
            user, nonce, uri = params["username"], params["nonce"], params["uri"]
            response, nc_text, cnonce = params["response"], params["nc"], params["cnonce"]
            qop, realm = params["qop"], params["realm"]
            nc = int(nc_text, 16)
        except (KeyError, ValueError):
            return Verdict(None, reason="incomplete digest header")
        if qop != "auth" or realm != self.realm or not uri.startswith("/wsman"):
            return Verdict(None, reason="wrong realm, qop or uri")
        secret = self._secret_of(user)
        if secret is None:
            return Verdict(None, reason="unknown user")
        expected = expected_response(secret, nonce, nc_text, cnonce, qop, method, uri)
        if not hmac.compare_digest(expected, response.lower()):
            return Verdict(None, reason="bad response")
        entry = self._nonces.get(nonce)
        if (entry is None or time.monotonic() - entry.issued > self.nonce_lifetime_s
                or len(entry.seen) >= self.max_uses):
            self._nonces.pop(nonce, None)
            return Verdict(None, stale=True, reason="stale nonce")
        if nc in entry.seen:
            return Verdict(None, reason="replayed nc")
        entry.seen.add(nc)
        self.last_nc = nc
        return Verdict(user)
