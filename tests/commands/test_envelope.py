from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagent import codec
from meshagent.commands import (
    CommandEnvelope,
    MalformedCommand,
    OperatorKey,
    SignedCommand,
    Target,
    sign_command,
)
from meshagent.commands.envelope import MAX_COMMAND_LIFETIME_S
from meshagent.errors import ConfigError, DecodeError
from meshagent.signing import verify

from .conftest import Mesh


def test_signed_command_round_trips(mesh: Mesh):
    command = mesh.command("tags", {"set": {"a": "b"}}, target=Target.tagged({"site": "lab"}))
    again = SignedCommand.from_wire(command.to_wire())
    envelope = again.envelope()
    assert CommandEnvelope.from_value(verify(again.command, "command")) == envelope
    assert envelope.target == Target.tagged({"site": "lab"})
    assert envelope.expires - envelope.not_before == 600.0


def test_two_identical_commands_differ_in_id_and_nonce(mesh: Mesh):
    a, b = mesh.command().envelope(), mesh.command().envelope()
    assert a.id != b.id and a.nonce != b.nonce


def test_target_selectors_match():
    me, other = b"\x01" * 16, b"\x02" * 16
    assert Target.all().matches(me, {})
    assert Target.node(me, other).matches(me, {})
    assert not Target.node(other).matches(me, {})
    assert Target.tagged({"a": "1", "b": "2"}).matches(me, {"a": "1", "b": "2", "c": "3"})
    assert not Target.tagged({"a": "1", "b": "2"}).matches(me, {"a": "1"})


@pytest.mark.parametrize("value", [{}, {"all": False}, {"nodes": []}, {"nodes": [b"short"]},
                                   {"tags": {}}, {"tags": {"a": 1}}, {"all": True, "tags": {}},
                                   "all", None])
def test_malformed_target_is_a_decode_error(value):
    with pytest.raises(DecodeError):
        Target.from_value(value)


@pytest.mark.parametrize("field,value", [("id", b"x"), ("issuer", b"x"), ("action", "Bad Name"),
                                         ("args", [1]), ("args", {1: 2}), ("nonce", b""),
                                         ("nb", "soon"), ("exp", 0.0)])
def test_malformed_envelope_fields_are_refused(mesh: Mesh, field, value):
    body = mesh.command().command.value()
    body[field] = value
    with pytest.raises(MalformedCommand):
        CommandEnvelope.from_value(body)


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.binary(),
                    st.text(), st.floats(), st.lists(st.binary(), max_size=3),
                    st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3))
_FIELDS = ["id", "mesh", "issuer", "target", "action", "args", "nb", "exp", "nonce", "extra"]


@given(st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=6), st.data())
def test_damaged_envelopes_parse_or_are_malformed_never_crash(changes, data):
    body = {"id": b"\x01" * 16, "mesh": b"m" * 16, "issuer": b"\x02" * 16,
            "target": {"all": True}, "action": "ping", "args": {}, "nb": 1.0, "exp": 2.0,
            "nonce": b"\x03" * 16}
    body.update(changes)
    for key in data.draw(st.lists(st.sampled_from(_FIELDS), max_size=2)):
        body.pop(key, None)
    try:
        envelope = CommandEnvelope.from_value(codec.unpack(codec.pack(body)))
    except MalformedCommand:
        return
    assert len(envelope.id) == 16 and envelope.expires > envelope.not_before


def test_console_refuses_a_key_not_matching_the_certificate(mesh: Mesh):
    with pytest.raises(ConfigError):
        sign_command(OperatorKey.generate("x"), mesh.cert, Target.all(), "ping", {}, 60)


@pytest.mark.parametrize("ttl", [0, -5, MAX_COMMAND_LIFETIME_S + 1])
def test_console_refuses_an_invalid_lifetime(mesh: Mesh, ttl):
    with pytest.raises(ConfigError):
        mesh.command(ttl=ttl)


@pytest.mark.parametrize("target", [Target.node(), Target.node(b"short"), Target.tagged({})])
def test_console_refuses_an_empty_or_malformed_target(mesh: Mesh, target):
    with pytest.raises(ConfigError):
        mesh.command(target=target)
