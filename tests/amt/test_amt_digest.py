"""Digest authentication as AMT does it: realm, nc counting, stale nonces, bad credentials."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest
from amt_support import ADMIN_PASSWORD

from amt import AccessPermission, AmtClient, BadCredentials, Realm
from amt.device.auth import DigestGuard
from amt.wsman.digest import (
    DigestChallenge,
    DigestSigner,
    acl_digest_password,
    ha1,
    is_amt_realm,
    parse_header,
)

REALM = "Digest:A3829B3827DE4D33D4449B366831FD01"


def test_acl_digest_password_is_base64_of_raw_md5_of_user_realm_password():
    raw = hashlib.md5(f"guest:{REALM}:pw".encode()).digest()
    assert acl_digest_password("guest", REALM, "pw") == base64.b64encode(raw).decode()
    assert ha1("guest", REALM, "pw") == raw.hex()


def test_challenge_parsing_accepts_amt_and_refuses_weaker_forms():
    amt = DigestChallenge.parse(f'Digest realm="{REALM}", nonce="abc", stale="false", qop="auth"')
    assert amt is not None and is_amt_realm(amt.realm) and not amt.stale
    assert DigestChallenge.parse('Digest realm="x", nonce="abc"') is None  # no qop=auth
    assert DigestChallenge.parse('Basic realm="x"') is None
    assert DigestChallenge.parse("Digest " + "a=b, " * 2000) is None  # oversize
    assert parse_header('Digest realm="a\\"b", nonce=1')["realm"] == 'a"b'


def test_signer_and_guard_agree_and_nc_replay_is_refused():
    guard = DigestGuard(REALM, {"admin": ha1("admin", REALM, "pw")}.get)
    signer = DigestSigner("admin", "pw")
    signer.accept(DigestChallenge.parse(guard.challenge()))
    first, nc = signer.authorization("POST", "/wsman")
    second, nc2 = signer.authorization("POST", "/wsman")
    assert (nc, nc2) == (1, 2)
    assert guard.verify(second, "POST").user == "admin"  # out of order is fine
    assert guard.verify(first, "POST").user == "admin"
    replay = guard.verify(first, "POST")
    assert replay.user is None and replay.reason == "replayed nc"
    assert guard.verify(first.replace('username="admin"', 'username="root"'), "POST").user is None


def test_expired_nonce_is_stale_not_wrong():
    guard = DigestGuard(REALM, {"admin": ha1("admin", REALM, "pw")}.get, nonce_lifetime_s=300)
    signer = DigestSigner("admin", "pw")
    signer.accept(DigestChallenge.parse(guard.challenge()))
    guard.expire_nonces()
    verdict = guard.verify(signer.authorization("POST", "/wsman")[0], "POST")
    assert verdict.user is None and verdict.stale


async def test_nonce_is_reused_with_a_counting_nc(device, admin):
    for _ in range(5):
        await admin.general_settings()
    assert device.guard.challenges_issued == 1
    assert device.guard.last_nc == 5


async def test_concurrent_requests_share_the_nonce(device, admin):
    await admin.general_settings()
    await asyncio.gather(*(admin.get_power_state() for _ in range(8)))
    assert device.guard.challenges_issued == 1
    assert device.guard.last_nc >= 9


async def test_stale_nonce_draws_a_fresh_challenge_transparently(device, admin):
    await admin.general_settings()
    device.guard.expire_nonces()
    settings = await admin.general_settings()
    assert settings.digest_realm == device.realm
    assert device.guard.challenges_issued == 2


async def test_wrong_password_is_bad_credentials_said_plainly(device):
    async with AmtClient("127.0.0.1", device.port, "admin", "wrong", timeout=5) as client:
        with pytest.raises(BadCredentials, match="wrong user name or password"):
            await client.general_settings()
    assert device.requests == 2  # unsigned, then signed once with the fresh nonce: no retry loop


async def test_unknown_user_and_local_only_account_are_refused(device, admin):
    await admin.add_user_acl_entry("localonly", "pw", [Realm.GENERAL_INFO],
                                   AccessPermission.LOCAL_ONLY)
    for user, password in (("nobody", ADMIN_PASSWORD), ("localonly", "pw")):
        async with AmtClient("127.0.0.1", device.port, user, password, timeout=5) as client:
            with pytest.raises(BadCredentials):
                await client.general_settings()


async def test_realm_is_amt_shaped(device):
    assert is_amt_realm(device.realm)
