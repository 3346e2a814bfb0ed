# The gateway's fast codec (gateway/codec.py: cryptography's CMAC and CTR, cbor2, tables
# parsed once) gives the very bytes, values and errors of the portable protocol/ code, on
# every kind, on altered frames and on random bodies.
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import cbor, frame, schema
from protocol.errors import FrameError, MICError, ProtocolError

from gateway import codec

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


@settings(max_examples=300, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), kind=st.integers(0, 31),
       addr=st.integers(0, frame.MAX_ADDR), fcnt=st.integers(0, frame.MAX_FCNT),
       direction=st.sampled_from((frame.UP, frame.DOWN)),
       body=st.binary(min_size=1, max_size=frame.MAX_BODY))
def test_seal_and_unseal_give_the_bytes_of_the_protocol_code(key, kind, addr, fcnt, direction,
                                                              body):
    portable, fast = frame.Keys(key), codec.SessionKeys(key)
    sealed = frame.seal(portable, kind, addr, fcnt, body, direction)
    assert codec.seal(fast, kind, addr, fcnt, body, direction) == sealed
    assert codec.unseal(fast, sealed, fcnt) == body
    # and protocol.frame accepts the fast keys as its own
    assert frame.unseal(fast, sealed, fcnt) == body


@settings(max_examples=200, deadline=None)
@given(position=st.integers(0, 40), bit=st.integers(0, 7), fcnt=st.integers(0, 0xFFFF))
def test_an_altered_frame_fails_its_mic_in_both(position, bit, fcnt):
    body = schema.encode(schema.FILL, {"level_pct": 42.5, "distance_mm": 812,
                                       "temperature_c": 21.4, "hours_to_full": 40, "fault": 0})
    sealed = bytearray(frame.seal(frame.Keys(KEY), schema.FILL, 0x123456, fcnt, body))
    position %= len(sealed)
    if position == 0:
        position = 1  # byte 0 holds the version: that is a FrameError, tested below
    sealed[position] ^= 1 << bit
    errors = []
    for unseal, keys in ((frame.unseal, frame.Keys(KEY)), (codec.unseal, codec.SessionKeys(KEY))):
        with pytest.raises(FrameError) as e:
            unseal(keys, bytes(sealed), fcnt)
        errors.append(type(e.value))
    assert errors[0] is errors[1]
    if not 4 <= position < 6:  # a counter bit changes the low bits on air: not a MIC error
        assert errors[0] is MICError


def test_bad_sizes_versions_and_counters_raise_the_same_errors():
    keys, fast = frame.Keys(KEY), codec.SessionKeys(KEY)
    sealed = frame.seal(keys, schema.FILL, 1, 5, b"\x80")
    for data, fcnt in ((sealed[:10], 5), (sealed + bytes(250), 5), (b"\x0b" + sealed[1:], 5),
                       (sealed, 6), (sealed, 5 + 0x10000)):
        kinds = []
        for unseal, k in ((frame.unseal, keys), (codec.unseal, fast)):
            with pytest.raises(ProtocolError) as e:
                unseal(k, data, fcnt)
            kinds.append(type(e.value))
        assert kinds[0] is kinds[1]
    for args in ((32, 1, 5, b"\x80"), (1, 1 << 24, 5, b"\x80"), (1, 1, 1 << 32, b"\x80"),
                 (1, 1, 5, b""), (1, 1, 5, bytes(246))):
        with pytest.raises(FrameError):
            codec.seal(fast, *args)


READINGS = {
    schema.FILL: {"level_pct": 42.5, "distance_mm": 812, "temperature_c": -21.4,
                  "hours_to_full": None, "fault": 3},
    schema.PARKING: {"occupied": True, "minutes": 17, "field_ut": 1.5, "overstay": False,
                     "fault": 0},
    schema.CO2: {"co2_ppm": 1234, "temperature_c": 21.5, "humidity_pct": 45.5, "fault": 0},
    schema.LUMINAIRE: {"power_w": 35.5, "energy_wh": 123456, "level_pct": 70, "burn_h": 9000,
                       "fault": 0},
    schema.STATUS: {"battery_mv": 3600, "reset_cause": 2, "faults": 0, "fw_version": 10203,
                    "uptime_s": 86400, "queue_depth": 0, "dropped": 0, "awake_ms": 1234,
                    "cycle_uah": 12.5},
    schema.EVENT: {"event": 1, "value": -5},
    schema.ACK: {"command_id": 7, "result": 0},
    schema.RECEIPT: {"fcnt": 70000, "commands": 3},
}


@pytest.mark.parametrize("kind", sorted(READINGS))
def test_every_kind_decodes_to_the_values_of_the_protocol_code(kind):
    body = schema.encode(kind, READINGS[kind])
    assert codec.decode(kind, body) == schema.decode(kind, body)


@pytest.mark.parametrize("fcnt,commands", [(0, 0), (23, 4), (65536, 1), (0xFFFFFFFF, 255)])
def test_receipt_bodies_are_the_bytes_of_the_protocol_code(fcnt, commands):
    assert codec.receipt(fcnt, commands) == schema.encode(schema.RECEIPT,
                                                          {"fcnt": fcnt, "commands": commands})


def _outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except ProtocolError as e:
        return "error", type(e)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64 - 1),
                    st.floats(allow_nan=False), st.text(max_size=3))


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(sorted(READINGS)),
       body=st.one_of(st.binary(min_size=1, max_size=40),
                      st.lists(scalars, max_size=10).map(cbor.dumps),
                      st.lists(st.integers(0, 300), min_size=2, max_size=9).map(
                          lambda v: cbor.dumps(v) + b"\x00"),
                      # the same values in a longer integer form than the protocol writes
                      st.lists(st.integers(0, 23), min_size=2, max_size=9).map(
                          lambda v: bytes([0x80 + len(v)]) + b"".join(b"\x18" + bytes([x])
                                                                      for x in v))))
def test_any_body_gives_the_same_values_or_the_same_error(kind, body):
    assert _outcome(codec.decode, kind, body) == _outcome(schema.decode, kind, body)


def test_batch_bodies_decode_as_in_the_protocol_code():
    from protocol import batch
    body = batch.encode(schema.FILL, [READINGS[schema.FILL]] * 3, 600, 30)
    assert codec.decode(schema.BATCH, body) == schema.decode(schema.BATCH, body)


def test_session_keys_are_the_protocols_keys():
    key = os.urandom(16)
    msg = os.urandom(37)
    assert codec.SessionKeys(key).digest(msg) == frame.Keys(key).mic.digest(msg)
