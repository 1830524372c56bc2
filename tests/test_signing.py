import pytest

from meshagent import codec
from meshagent.errors import DecodeError
from meshagent.signing import SignatureError, Signed, SigningKey, sign, verify


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
