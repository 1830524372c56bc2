"""Console login: one admin password (set at ``server init``, stored as an scrypt hash),
exchanged for session tokens.

A browser logs in with ``POST /api/login`` and gets an HttpOnly, SameSite=Strict cookie;
``meshctl`` sends ``Authorization: Bearer <password or session token>``. Passwords are
checked with scrypt (stdlib ``hashlib.scrypt``); a verified bearer password is
remembered by its SHA-256 so scrypt's cost is paid once per process, not per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from meshagent.errors import ConfigError

__all__ = ["FailureThrottle", "PasswordHash", "SessionStore", "SESSION_COOKIE",
           "SESSION_LIFETIME_S"]

SESSION_COOKIE = "meshagent_session"
SESSION_LIFETIME_S = 12 * 3600.0
_SCRYPT = {"n": 1 << 14, "r": 8, "p": 1}
MAX_SESSIONS = 10_000


class PasswordHash:
    """``scrypt$n$r$p$salt_hex$hash_hex``."""

    def __init__(self, text: str) -> None:
        try:
            scheme, n, r, p, salt, digest = text.split("$")
            if scheme != "scrypt":
                raise ValueError(scheme)
            self.n, self.r, self.p = int(n), int(r), int(p)
            self.salt, self.digest = bytes.fromhex(salt), bytes.fromhex(digest)
        except ValueError as exc:
            raise ConfigError("admin_hash: not an scrypt password hash") from exc
        self.text = text

    @classmethod
    def of(cls, password: str) -> PasswordHash:
        salt = secrets.token_bytes(16)
        digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT, dklen=32)
        return cls(f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}"
                   f"${digest.hex()}")

    def matches(self, password: str) -> bool:
        digest = hashlib.scrypt(password.encode(), salt=self.salt, n=self.n, r=self.r,
                                p=self.p, dklen=len(self.digest))
        return hmac.compare_digest(digest, self.digest)


class SessionStore:
    """Random session tokens with an expiry, in memory (a restart logs everyone out)."""

    def __init__(self, password: PasswordHash) -> None:
        self.password = password
        self._sessions: dict[str, float] = {}
        self._verified_passwords: set[bytes] = set()

    def login(self, password: str) -> str | None:
        """A new session token, or None for a wrong password."""
        if not self.password.matches(password):
            return None
        self._forget_expired()
        token = secrets.token_urlsafe(32)
        self._sessions[token] = time.monotonic() + SESSION_LIFETIME_S
        return token

    def logout(self, token: str) -> None:
        self._sessions.pop(token, None)

    def valid(self, token: str) -> bool:
        """A live session token, or the admin password itself (for ``meshctl``)."""
        expiry = self._sessions.get(token)
        if expiry is not None:
            return expiry > time.monotonic()
        fingerprint = hashlib.sha256(token.encode()).digest()
        if fingerprint in self._verified_passwords:
            return True
        if token and self.password.matches(token):
            self._verified_passwords.add(fingerprint)
            return True
        return False

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for token in [t for t, expiry in self._sessions.items() if expiry <= now]:
            del self._sessions[token]
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))


class FailureThrottle:
    """At most ``limit`` failed logins per address per ``window_s``; past that, requests
    from the address are refused before any scrypt work (which is what a guesser would
    otherwise make the service spend its CPU on)."""

    def __init__(self, limit: int = 10, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, tuple[float, int]] = {}

    def allowed(self, address: str) -> bool:
        start, count = self._failures.get(address, (0.0, 0))
        return count < self.limit or self.clock() - start > self.window_s

    def failed(self, address: str) -> None:
        now = self.clock()
        start, count = self._failures.get(address, (now, 0))
        if now - start > self.window_s:
            start, count = now, 0
        if len(self._failures) > MAX_SESSIONS:
            self._failures.clear()
        self._failures[address] = (start, count + 1)
