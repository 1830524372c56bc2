"""Carrying envelopes to a device: ``POST /wsman`` over HTTP (16992) or TLS (16993).

``Transport`` is the one thing the WS-Man client needs: ``post(envelope) -> (status, body)``.
``HttpTransport`` is the real one (aiohttp, digest auth, size and time limits); tests of
the parser plug in a transport that answers from fixture files.

Digest flow (see ``digest.py``): the first request goes unsigned and draws the challenge;
later ones are signed up front with the same nonce and a growing nc. On a 401:
``stale=true`` or a request signed with an older nonce -> take the new challenge and send
again; a 401 to a request signed with a challenge taken *for that request* -> BadCredentials.

Limits: every attempt is bounded by ``timeout`` seconds (connect + send + full reply) and a
reply body by ``max_reply_bytes``, read incrementally so a huge body never sits in memory.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Protocol

from amt import namespaces as ns
from amt.errors import AmtConnectionError, AmtTimeout, BadCredentials, MalformedResponse
from amt.wsman.digest import DigestChallenge, DigestSigner
from amt.wsman.xmlsafe import DEFAULT_MAX_BYTES
from meshagent.log import get_logger

# aiohttp (about 10 MiB resident) loads on the first request, not at import: every agent
# imports this module (it serves its peers' AMT) but most never reach a device.
if TYPE_CHECKING:
    import aiohttp

__all__ = ["HttpTransport", "Transport"]

log = get_logger(__name__)

_CONTENT_TYPE = "application/soap+xml;charset=UTF-8"
_MAX_ATTEMPTS = 3


class Transport(Protocol):
    async def post(self, envelope: bytes) -> tuple[int, bytes]:
        """Send one envelope; the HTTP status and body of the (authenticated) reply."""
        ...

    async def close(self) -> None: ...


class HttpTransport:
    """HTTP(S) to one device with digest authentication and one pooled aiohttp session.

    ``tls``: use HTTPS. AMT presents a self-signed certificate, so it is pinned by its
    SHA-256 (``cert_sha256``, the DER digest); without a pin the certificate is not checked
    (digest still never sends the password), and a warning is logged once.
    """

    def __init__(self, host: str, port: int | None, user: str, password: str, *,
                 tls: bool = False, cert_sha256: bytes | None = None, timeout: float = 10.0,
                 max_reply_bytes: int = DEFAULT_MAX_BYTES, connections: int = 4) -> None:
        port = port or (ns.TLS_PORT if tls else ns.HTTP_PORT)
        scheme = "https" if tls else "http"
        bracketed = f"[{host}]" if ":" in host else host
        self.url = f"{scheme}://{bracketed}:{port}/wsman"
        self.peer = f"{host}:{port}"
        self.timeout = timeout
        self.max_reply_bytes = max_reply_bytes
        self._signer = DigestSigner(user, password)
        self._tls = tls
        self._cert_sha256 = cert_sha256
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | aiohttp.Fingerprint | bool:
        import aiohttp

        if not self._tls:
            return False
        if self._cert_sha256 is not None:
            return aiohttp.Fingerprint(self._cert_sha256)
        log.warn_limited("amt_tls_unpinned", key=self.peer, peer=self.peer)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections, ssl=self._ssl())
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self.max_reply_bytes:
            raise MalformedResponse(f"reply of {declared} bytes exceeds {self.max_reply_bytes}")
        body = bytearray()
        async for chunk in response.content.iter_any():
            body += chunk
            if len(body) > self.max_reply_bytes:
                raise MalformedResponse(f"reply exceeds {self.max_reply_bytes} bytes")
        return bytes(body)

    async def _send(self, envelope: bytes, authorization: str | None
                    ) -> tuple[int, list[str], bytes]:
        import aiohttp

        headers = {"Content-Type": _CONTENT_TYPE}
        if authorization:
            headers["Authorization"] = authorization
        try:
            async with asyncio.timeout(self.timeout):
                async with self._client().post(self.url, data=envelope, headers=headers) as resp:
                    body = await self._read_body(resp)
                    return resp.status, resp.headers.getall("WWW-Authenticate", []), body
        except TimeoutError:
            raise AmtTimeout(f"{self.peer}: no complete reply within {self.timeout} s") from None
        except aiohttp.ServerFingerprintMismatch:
            raise AmtConnectionError(f"{self.peer}: TLS certificate does not match the pin") \
                from None
        except (aiohttp.ClientError, OSError) as exc:
            raise AmtConnectionError(f"{self.peer}: {type(exc).__name__}: {exc}") from None

    async def post(self, envelope: bytes) -> tuple[int, bytes]:
        took_challenge = False  # this request drew a challenge and was signed with it
        for _ in range(_MAX_ATTEMPTS):
            signed = self._signer.authorization("POST", "/wsman")
            used_nonce = self._signer.challenge.nonce if self._signer.challenge else None
            status, challenges, body = await self._send(envelope, signed[0] if signed else None)
            if status != 401:
                return status, body
            challenge = next((c for c in map(DigestChallenge.parse, challenges) if c), None)
            if challenge is None:
                raise MalformedResponse(f"{self.peer}: 401 without a usable digest challenge")
            current = self._signer.challenge
            if current is not None and current.nonce != used_nonce:
                continue  # a concurrent request already took a newer challenge: sign with it
            if took_challenge and signed is not None and not challenge.stale:
                raise BadCredentials(
                    f"{self.peer}: user {self._signer.user!r} was refused with a fresh "
                    f"challenge from realm {challenge.realm!r}: wrong user name or password")
            self._signer.accept(challenge)
            took_challenge = True
        raise BadCredentials(f"{self.peer}: authentication did not succeed after "
                             f"{_MAX_ATTEMPTS} challenges")
