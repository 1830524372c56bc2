"""HTTP digest authentication as Intel AMT does it (RFC 7616 with MD5 and qop=auth).

AMT's realm is ``Digest:`` followed by 32 hex digits, unique per device. It answers an
unsigned request with 401 and a challenge (realm, nonce, qop="auth", stale); a client then
signs each request with the nonce and a counting ``nc``, and may keep reusing the nonce until
the device says ``stale=true`` (or sends a fresh challenge), when it signs again with the new
nonce. A 401 for a request signed with a *fresh* nonce means the credentials are wrong.

The same MD5(user:realm:password) is what AMT stores per account, and what
``AddUserAclEntryEx`` takes as ``DigestPassword`` (base64 of the 16 raw bytes): see
``ha1`` and ``acl_digest_password``.

Used by the client (``DigestSigner``) and by the software device (``parse_header``,
``expected_response``), so both compute the same thing in one place.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass

__all__ = [
    "DigestChallenge",
    "DigestSigner",
    "acl_digest_password",
    "expected_response",
    "ha1",
    "is_amt_realm",
    "parse_header",
]

MAX_HEADER_CHARS = 4096
_AMT_REALM = re.compile(r"Digest:[0-9A-Fa-f]{32}")
_PARAM = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*(?:,|$)')


def _md5_hex(text: str) -> str:
    # MD5 is what RFC 7616 digest with algorithm=MD5 (the only one AMT offers) is made of.
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def ha1(user: str, realm: str, password: str) -> str:
    """Hex MD5(user:realm:password): the stored secret of a digest account."""
    return _md5_hex(f"{user}:{realm}:{password}")


def acl_digest_password(user: str, realm: str, password: str) -> str:
    """``DigestPassword`` of AddUserAclEntryEx: base64 of the raw MD5(user:realm:password)."""
    return base64.b64encode(bytes.fromhex(ha1(user, realm, password))).decode("ascii")


def expected_response(secret_ha1: str, nonce: str, nc: str, cnonce: str, qop: str,
                      method: str, uri: str) -> str:
    """The ``response`` value of an Authorization header for qop=auth."""
    ha2 = _md5_hex(f"{method}:{uri}")
    return _md5_hex(f"{secret_ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def is_amt_realm(realm: str) -> bool:
    return _AMT_REALM.fullmatch(realm) is not None


def parse_header(value: str, scheme: str = "Digest") -> dict[str, str] | None:
    """The parameters of a ``Digest k=v, k="v"`` header, or None if it is not one.

    Bounded: headers longer than ``MAX_HEADER_CHARS`` are refused, unknown parameters kept.
    """
    if len(value) > MAX_HEADER_CHARS:
        return None
    head, _, rest = value.strip().partition(" ")
    if head.lower() != scheme.lower():
        return None
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if match is None or match.end() == pos:
            return None
        key, raw = match.group(1).lower(), match.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[key] = raw
        pos = match.end()
    return params


@dataclass(frozen=True)
class DigestChallenge:
    """One ``WWW-Authenticate: Digest`` challenge."""

    realm: str
    nonce: str
    qop: str
    stale: bool
    opaque: str | None = None

    @classmethod
    def parse(cls, value: str) -> DigestChallenge | None:
        """The challenge in a header value, or None if it is not an acceptable one."""
        params = parse_header(value)
        if not params or "realm" not in params or "nonce" not in params:
            return None
        qops = [q.strip() for q in params.get("qop", "").split(",")]
        if "auth" not in qops:
            return None  # AMT always offers qop=auth; refuse the weaker RFC 2069 form
        if params.get("algorithm", "MD5").upper() != "MD5":
            return None
        return cls(realm=params["realm"], nonce=params["nonce"], qop="auth",
                   stale=params.get("stale", "").lower() == "true",
                   opaque=params.get("opaque"))


class DigestSigner:
    """Signs requests for one account, reusing the device's nonce with a counting nc.

    Not thread-safe; one per client, used from one event loop (``nc`` only grows, so
    concurrent requests on the same nonce each get a distinct count).
    """

    def __init__(self, user: str, password: str) -> None:
        if not user or any(ch in user for ch in '"\\\r\n'):
            raise ValueError("a digest user name must be non-empty, without quotes, "
                             "backslashes or line breaks")
        self.user = user
        self._password = password
        self.challenge: DigestChallenge | None = None
        self._ha1 = ""
        self.nc = 0

    def accept(self, challenge: DigestChallenge) -> None:
        """Take a new challenge: later requests are signed with its nonce from nc=1."""
        if self.challenge is None or challenge.realm != self.challenge.realm:
            self._ha1 = ha1(self.user, challenge.realm, self._password)
        self.challenge = challenge
        self.nc = 0

    def authorization(self, method: str, uri: str) -> tuple[str, int] | None:
        """The Authorization header for the next request and its nc, or None before a challenge."""
        challenge = self.challenge
        if challenge is None:
            return None
        self.nc += 1
        nc = f"{self.nc:08x}"
        cnonce = os.urandom(8).hex()
        response = expected_response(self._ha1, challenge.nonce, nc, cnonce, "auth", method, uri)
        parts = [f'username="{self.user}"', f'realm="{challenge.realm}"',
                 f'nonce="{challenge.nonce}"', f'uri="{uri}"', f'response="{response}"',
                 "qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        if challenge.opaque is not None:
            parts.append(f'opaque="{challenge.opaque}"')
        return "Digest " + ", ".join(parts), self.nc
