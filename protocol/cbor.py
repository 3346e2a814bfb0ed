# CBOR (RFC 8949) for the data model cityedge uses: integers over the full 64-bit range,
# byte and text strings, arrays, maps, booleans, null and floats.
#
# Decoding (cbor_decode.py) is strict, because every byte a gateway reads may come from an
# attacker. It is imported on first use, so a node that only sends never holds it in RAM.
# Runs unchanged on MicroPython and CPython.
import struct

from protocol.errors import EncodeError

MAX_DEPTH = 16

_UINT64_MAX = 0xFFFFFFFFFFFFFFFF


# ---------------------------------------------------------------- encoding

def dumps(obj):
    """Encode obj as CBOR: integers and floats in their shortest exact form, map keys
    sorted; the same bytes on every runtime."""
    out = bytearray()
    _encode(out, obj, 0)
    return bytes(out)


def _head(out, major, n):
    major <<= 5
    if n < 24:
        out.append(major | n)
    elif n < 0x100:
        out.append(major | 24)
        out.append(n)
    elif n < 0x10000:
        out.append(major | 25)
        out.extend(struct.pack(">H", n))
    elif n < 0x100000000:
        out.append(major | 26)
        out.extend(struct.pack(">I", n))
    else:
        out.append(major | 27)
        out.extend(n.to_bytes(8, "big"))


def _encode(out, obj, depth):
    if depth > MAX_DEPTH:
        raise EncodeError("cbor: nesting deeper than %d" % MAX_DEPTH)
    if obj is None:
        out.append(0xF6)
    elif obj is True:
        out.append(0xF5)
    elif obj is False:
        out.append(0xF4)
    elif isinstance(obj, int):
        if 0 <= obj <= _UINT64_MAX:
            _head(out, 0, obj)
        elif -_UINT64_MAX - 1 <= obj < 0:
            _head(out, 1, -1 - obj)
        else:
            raise EncodeError("cbor: integer %d does not fit in 64 bits" % obj)
    elif isinstance(obj, float):
        _encode_float(out, obj)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        _head(out, 2, len(obj))
        out.extend(obj)
    elif isinstance(obj, str):
        raw = obj.encode("utf-8")
        _head(out, 3, len(raw))
        out.extend(raw)
    elif isinstance(obj, (list, tuple)):
        _head(out, 4, len(obj))
        for item in obj:
            _encode(out, item, depth + 1)
    elif isinstance(obj, dict):
        # Keys in the bytewise order of their encodings (RFC 8949 section 4.2.1), so a map
        # encodes the same on every runtime, whatever order its dict keeps.
        entries = []
        for key in obj:
            encoded_key = bytearray()
            _encode(encoded_key, key, depth + 1)
            entries.append((bytes(encoded_key), key))
        entries.sort()
        _head(out, 5, len(entries))
        for encoded_key, key in entries:
            out.extend(encoded_key)
            _encode(out, obj[key], depth + 1)
    else:
        raise EncodeError("cbor: cannot encode %s" % type(obj).__name__)


def _encode_float(out, value):
    if value != value:  # NaN: the canonical quiet NaN, half precision
        out.extend(b"\xf9\x7e\x00")
        return
    # The shortest width that gives the same value back. MicroPython's 'e' packing
    # wraps out-of-range values instead of raising, so the round trip is the test.
    for prefix, fmt in ((0xF9, ">e"), (0xFA, ">f")):
        try:
            packed = struct.pack(fmt, value)
        except OverflowError:
            continue
        if struct.unpack(fmt, packed)[0] == value and _same_sign(packed, value):
            out.append(prefix)
            out.extend(packed)
            return
    out.append(0xFB)
    out.extend(struct.pack(">d", value))


def _same_sign(packed, value):
    # -0.0 == 0.0, so compare the sign bit as well.
    negative = value < 0 or (value == 0 and str(value)[0] == "-")
    return bool(packed[0] & 0x80) == negative




def loads(data):
    """Decode exactly one CBOR data item that fills all of data (see cbor_decode)."""
    from protocol.cbor_decode import loads
    return loads(data)


def loads_prefix(data, pos=0):
    """Decode one data item starting at pos; return (value, position after it)."""
    from protocol.cbor_decode import loads_prefix
    return loads_prefix(data, pos)
