import pytest

from meshagent import codec, core
from meshagent.errors import DecodeError
from meshagent.signing import (
    SignatureError,
    Signed,
    SigningKey,
    _message,
    _VerifiedSignatures,
    check,
    sign,
    verify,
    verify_raw,
)


def test_signed_document_round_trips_and_verifies():
    key = SigningKey.generate()
    doc = sign(key, "record", {"b": 2, "a": [1, b"x"]})
    again = Signed.from_wire(doc.to_wire())
    assert verify(again, "record", key.public) == {"a": [1, b"x"], "b": 2}


def test_signature_for_one_kind_is_refused_for_another():
    key = SigningKey.generate()
    doc = sign(key, "record", {"a": 1})
    with pytest.raises(SignatureError):
        verify(Signed("command", doc.body, doc.signer, doc.signature), "command")


def test_tampered_body_or_other_signer_is_refused():
    key, other = SigningKey.generate(), SigningKey.generate()
    doc = sign(key, "record", {"a": 1})
    with pytest.raises(SignatureError):
        verify(Signed("record", codec.pack({"a": 2}), doc.signer, doc.signature), "record")
    with pytest.raises(SignatureError):
        verify(doc, "record", other.public)


def test_check_refuses_what_verify_refuses_but_does_not_decode_the_body():
    """For callers that decoded the body already (records, certificates): the same
    SignatureErrors, and a body that is not MessagePack is not looked at."""
    key, other = SigningKey.generate(), SigningKey.generate()
    doc = sign(key, "record", {"a": 1})
    assert check(doc, "record", key.public) is None
    with pytest.raises(SignatureError):
        check(doc, "command", key.public)
    with pytest.raises(SignatureError):
        check(doc, "record", other.public)
    with pytest.raises(SignatureError):
        check(Signed("record", codec.pack({"a": 2}), doc.signer, doc.signature), "record")
    raw = b"\xc1"  # a byte MessagePack never uses
    undecodable = Signed("record", raw, key.public, key.sign_raw(_message("record", raw)))
    check(undecodable, "record", key.public)
    with pytest.raises(DecodeError):
        verify(undecodable, "record", key.public)


def test_seed_round_trip_gives_the_same_key():
    key = SigningKey.generate()
    assert SigningKey.from_seed(key.seed).public == key.public


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x93\x01", codec.pack([1, 2]),
                                  codec.pack({"k": 1, "b": b"", "s": b"", "sig": b""})])
def test_malformed_signed_document_is_a_decode_error(data):
    with pytest.raises(DecodeError):
        Signed.from_wire(data)


def test_oversize_message_is_refused():
    with pytest.raises(DecodeError):
        codec.unpack(b"\x00" * (codec.MAX_MESSAGE_BYTES + 1))


def test_signature_checked_again_skips_the_curve_but_a_changed_one_does_not(monkeypatch):
    checks = []
    real = core.ed25519_verify
    monkeypatch.setattr(core, "ed25519_verify", lambda *args: checks.append(1) or real(*args))
    key = SigningKey.generate()
    message = b"checked twice " + key.public
    signature = key.sign_raw(message)
    verify_raw(key.public, message, signature)
    verify_raw(key.public, message, signature)
    assert len(checks) == 1
    with pytest.raises(SignatureError):
        verify_raw(key.public, message + b"!", signature)
    with pytest.raises(SignatureError):  # failures are not remembered: checked each time
        verify_raw(key.public, message + b"!", signature)
    assert len(checks) == 3


def test_remembered_signatures_are_bounded_least_recently_used_first():
    seen = _VerifiedSignatures(limit=2)
    seen.add(b"a")
    seen.add(b"b")
    assert b"a" in seen  # now the most recently used
    seen.add(b"c")
    assert b"a" in seen and b"c" in seen and b"b" not in seen
