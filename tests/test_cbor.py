"""protocol/cbor.py on both runtimes: RFC 8949 Appendix A vectors, strict rejection of
ill-formed input, and property tests against cbor2 in both directions."""
import math
import struct

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import cbor
from protocol.errors import DecodeError, EncodeError, ProtocolError, TruncatedError

# RFC 8949 Appendix A: (value, encoding) for every item of the data model cityedge uses.
ROUND_TRIP = [
    (0, "00"), (1, "01"), (10, "0a"), (23, "17"), (24, "1818"), (25, "1819"), (100, "1864"),
    (1000, "1903e8"), (1000000, "1a000f4240"), (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"), (-18446744073709551616, "3bffffffffffffffff"),
    (-1, "20"), (-10, "29"), (-100, "3863"), (-1000, "3903e7"),
    (0.0, "f90000"), (-0.0, "f98000"), (1.0, "f93c00"), (1.1, "fb3ff199999999999a"),
    (1.5, "f93e00"), (65504.0, "f97bff"), (100000.0, "fa47c35000"),
    (3.4028234663852886e38, "fa7f7fffff"), (1.0e300, "fb7e37e43c8800759c"),
    (5.960464477539063e-8, "f90001"), (0.00006103515625, "f90400"), (-4.0, "f9c400"),
    (-4.1, "fbc010666666666666"), (math.inf, "f97c00"), (-math.inf, "f9fc00"),
    (False, "f4"), (True, "f5"), (None, "f6"),
    (b"", "40"), (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"), ("a", "6161"), ("IETF", "6449455446"), ("\"\\", "62225c"), ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"), ("\U00010151", "64f0908591"),
    ([], "80"), ([1, 2, 3], "83010203"), ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"), ({1: 2, 3: 4}, "a201020304"), ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
    ({"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}, "a56161614161626142616361436164614461656145"),
]

# Appendix A items that only decode: other float widths and indefinite lengths.
DECODE_ONLY = [
    (math.inf, "fa7f800000"), (-math.inf, "faff800000"), (math.inf, "fb7ff0000000000000"),
    (-math.inf, "fbfff0000000000000"),
    (b"\x01\x02\x03\x04\x05", "5f42010243030405ff"), ("streaming", "7f657374726561646d696e67ff"),
    ([], "9fff"), ([1, [2, 3], [4, 5]], "9f018202039f0405ffff"),
    ([1, [2, 3], [4, 5]], "9f01820203820405ff"), ([1, [2, 3], [4, 5]], "83018202039f0405ff"),
    ([1, [2, 3], [4, 5]], "83019f0203ff820405"),
    (list(range(1, 26)), "9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff"),
    ({"a": 1, "b": [2, 3]}, "bf61610161629f0203ffff"), (["a", {"b": "c"}], "826161bf61626163ff"),
    ({"Fun": True, "Amt": -2}, "bf6346756ef563416d7421ff"),
]

NAN_ENCODINGS = ["f97e00", "fa7fc00000", "fb7ff8000000000000"]

# (encoding, why it is rejected): ill-formed (RFC 8949 Appendix F) or outside the data model.
REJECTED = [
    ("", "empty input"), ("18", "truncated argument"), ("19 01", "truncated argument"),
    ("1b 00 00 00 00 00 00 00", "truncated argument"), ("62 61", "string runs past the end"),
    ("5a ff ff ff ff 00", "byte string length far past the end"),
    ("9b 00 00 00 01 00 00 00 00", "array count far past the end"),
    ("bb 00 00 00 01 00 00 00 00", "map count far past the end"),
    ("83 01 02", "array runs past the end"), ("a1 01", "map without its value"),
    ("1c", "reserved additional information"), ("1d", "reserved additional information"),
    ("1e", "reserved additional information"), ("fc", "reserved additional information"),
    ("1f", "indefinite length on an integer"), ("3f", "indefinite length on an integer"),
    ("df", "indefinite length on a tag"), ("ff", "a lone break code"),
    ("81 ff", "break inside a definite array"), ("9f 01", "indefinite array without break"),
    ("5f 41 00", "indefinite string without break"), ("5f 00 ff", "integer chunk in a byte string"),
    ("5f 61 61 ff", "text chunk in a byte string"), ("5f 5f ff ff", "nested indefinite chunk"),
    ("f8 00", "two-byte simple value below 32"), ("f8 1f", "two-byte simple value below 32"),
    ("f7", "undefined is not in the data model"), ("f0", "unassigned simple value"),
    ("f8 ff", "unassigned simple value"), ("c1 1a 51 4b 67 b0", "tags are not in the data model"),
    ("c2 49 01 00 00 00 00 00 00 00 00", "bignums are not in the data model"),
    ("01 00", "trailing bytes"), ("a2 01 02 01 03", "duplicate map key"),
    ("a1 80 01", "array as map key"), ("62 c3 28", "invalid UTF-8"),
    ("63 ed a0 80", "UTF-8 surrogate"), ("62 c0 80", "overlong UTF-8"),
    ("64 f4 90 80 80", "code point above U+10FFFF"), ("61 ff", "invalid UTF-8 byte"),
    ("63 e6 b0", "truncated UTF-8 sequence"),
    ("81" * 40 + "00", "nesting deeper than the limit"),
]


def h(text):
    return bytes.fromhex(text.replace(" ", ""))


def same(a, b):
    """Equal, and equal in type and float sign all the way down (1 != 1.0 != True here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return set(a) == set(b) and all(same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize("value, encoding", ROUND_TRIP, ids=[e for _, e in ROUND_TRIP])
def test_rfc8949_vector_encodes_to_its_shortest_form(runtime, value, encoding):
    assert runtime.call("protocol.cbor.dumps", value).hex() == encoding


@pytest.mark.parametrize("value, encoding", ROUND_TRIP + DECODE_ONLY,
                         ids=[e for _, e in ROUND_TRIP + DECODE_ONLY])
def test_rfc8949_vector_decodes_to_its_value(runtime, value, encoding):
    assert same(runtime.call("protocol.cbor.loads", h(encoding)), value)


@pytest.mark.parametrize("encoding", NAN_ENCODINGS)
def test_nan_of_any_width_decodes_and_encodes_as_half_precision(runtime, encoding):
    value = runtime.call("protocol.cbor.loads", h(encoding))
    assert math.isnan(value)
    assert runtime.call("protocol.cbor.dumps", value).hex() == "f97e00"


@pytest.mark.parametrize("encoding, why", REJECTED, ids=[w for _, w in REJECTED])
def test_ill_formed_input_is_rejected_with_decode_error(runtime, encoding, why):
    with pytest.raises(DecodeError):
        runtime.call("protocol.cbor.loads", h(encoding))


@pytest.mark.parametrize("encoding", ["18", "62 61", "83 01 02", "9f 01", "5a ff ff ff ff 00"])
def test_input_that_ends_early_says_it_is_truncated(runtime, encoding):
    with pytest.raises(TruncatedError, match="need"):
        runtime.call("protocol.cbor.loads", h(encoding))


def test_decode_error_is_both_a_protocol_error_and_a_value_error():
    assert issubclass(DecodeError, ProtocolError) and issubclass(DecodeError, ValueError)


@pytest.mark.parametrize("value", [2**64, -(2**64) - 1, {1, 2}, object(), 1j])
def test_values_outside_the_data_model_are_refused_when_encoding(value):
    with pytest.raises(EncodeError):
        cbor.dumps(value)


def test_encoding_refuses_nesting_deeper_than_the_decoder_accepts(runtime):
    deep = 0
    for _ in range(cbor.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(EncodeError):
        runtime.call("protocol.cbor.dumps", deep)


def test_deepest_nesting_allowed_round_trips(runtime):
    deep = 0
    for _ in range(cbor.MAX_DEPTH):
        deep = [deep]
    assert runtime.call("protocol.cbor.loads", runtime.call("protocol.cbor.dumps", deep)) == deep


def test_prefix_decoding_returns_the_position_after_the_item(runtime):
    assert list(runtime.call("protocol.cbor.loads_prefix", h("83010203 f5"), 0)) == [[1, 2, 3], 4]


# ---------------------------------------------------------------- properties

scalars = (st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1)
           | st.floats(allow_nan=False) | st.text() | st.binary())
keys = st.integers(-(2**64), 2**64 - 1) | st.text()
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(keys, inner, max_size=5), max_leaves=20)


def without_maps(v):
    return not isinstance(v, dict) and (not isinstance(v, list) or all(map(without_maps, v)))


@settings(max_examples=400)
@given(values)
def test_cbor2_decodes_what_we_encode(value):
    assert same(cbor2.loads(cbor.dumps(value)), value)


@settings(max_examples=400)
@given(values)
def test_we_decode_what_cbor2_encodes(value):
    assert same(cbor.loads(cbor2.dumps(value)), value)


@settings(max_examples=400)
@given(values.filter(without_maps))
def test_encoding_is_byte_identical_to_cbor2_canonical(value):
    assert cbor.dumps(value) == cbor2.dumps(value, canonical=True)


@settings(max_examples=2000)
@given(st.binary(max_size=64))
def test_random_bytes_decode_as_cbor2_does_or_raise_decode_error(data):
    try:
        ours = cbor.loads(data)
    except DecodeError:
        return
    assert same(ours, cbor2.loads(data))


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(value=values)
def test_both_runtimes_encode_identically(micropython, value):
    encoded = cbor.dumps(value)
    assert micropython.call("protocol.cbor.dumps", value) == encoded
    assert same(micropython.call("protocol.cbor.loads", encoded), value)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(data=st.binary(max_size=40))
def test_random_bytes_never_raise_anything_but_decode_error_on_micropython(micropython, data):
    try:
        micropython.call("protocol.cbor.loads", data)
    except DecodeError:
        pass
