# Strict CBOR (RFC 8949) decoding for the data model of cbor.py. Every byte a gateway reads
# may come from an attacker, so: truncated input, trailing bytes, lengths running past the
# end, nesting deeper than MAX_DEPTH, reserved or ill-formed initial bytes, invalid UTF-8,
# tags, unknown simple values and duplicate map keys all raise DecodeError, and a length is
# checked against the bytes left before anything is allocated.
import struct

from protocol.cbor import MAX_DEPTH
from protocol.errors import DecodeError, TruncatedError

_BREAK = object()  # marks the 0xff stop code inside an indefinite-length item


def loads(data):
    """Decode exactly one CBOR data item that fills all of data."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("cbor: expected bytes, got %s" % type(data).__name__)
    buf = memoryview(data)
    value, pos = _decode(buf, 0, 0)
    if value is _BREAK:
        raise DecodeError("cbor: unexpected break code at offset 0")
    if pos != len(buf):
        raise DecodeError("cbor: %d trailing bytes after the data item" % (len(buf) - pos))
    return value


def loads_prefix(data, pos=0):
    """Decode one data item starting at pos; return (value, position after it)."""
    buf = memoryview(data)
    value, end = _decode(buf, pos, 0)
    if value is _BREAK:
        raise DecodeError("cbor: unexpected break code at offset %d" % pos)
    return value, end


def _need(buf, pos, n):
    if n > len(buf) - pos:
        raise TruncatedError("cbor: need %d bytes at offset %d, only %d left"
                             % (n, pos, len(buf) - pos))


def _argument(buf, pos, info):
    # The head's argument; pos is just past the initial byte.
    if info < 24:
        return info, pos
    if info == 24:
        _need(buf, pos, 1)
        return buf[pos], pos + 1
    if info == 25:
        _need(buf, pos, 2)
        return (buf[pos] << 8) | buf[pos + 1], pos + 2
    if info == 26:
        _need(buf, pos, 4)
        return struct.unpack(">I", buf[pos:pos + 4])[0], pos + 4
    if info == 27:
        _need(buf, pos, 8)
        return int.from_bytes(bytes(buf[pos:pos + 8]), "big"), pos + 8
    raise DecodeError("cbor: reserved additional information %d at offset %d" % (info, pos - 1))


def _decode(buf, pos, depth):
    if depth > MAX_DEPTH:
        raise DecodeError("cbor: nesting deeper than %d at offset %d" % (MAX_DEPTH, pos))
    _need(buf, pos, 1)
    initial = buf[pos]
    major = initial >> 5
    info = initial & 0x1F
    start = pos
    pos += 1

    if major == 7:
        return _decode_simple(buf, pos, info, start)
    if info == 31:
        if major in (2, 3, 4, 5):
            return _decode_indefinite(buf, pos, major, depth, start)
        raise DecodeError("cbor: indefinite length not allowed for major type %d at offset %d"
                          % (major, start))
    n, pos = _argument(buf, pos, info)
    if major == 0:
        return n, pos
    if major == 1:
        return -1 - n, pos
    if major == 2:
        _need(buf, pos, n)
        return bytes(buf[pos:pos + n]), pos + n
    if major == 3:
        _need(buf, pos, n)
        return _text(buf[pos:pos + n], pos), pos + n
    if major == 4:
        _need(buf, pos, n)  # every item takes at least one byte
        items = []
        for _ in range(n):
            item, pos = _item(buf, pos, depth)
            items.append(item)
        return items, pos
    if major == 5:
        _need(buf, pos, 2 * n)
        result = {}
        for _ in range(n):
            pos = _map_entry(buf, pos, depth, result)
        return result, pos
    raise DecodeError("cbor: tag %d at offset %d is not supported" % (n, start))


def _item(buf, pos, depth):
    at = pos
    value, pos = _decode(buf, pos, depth + 1)
    if value is _BREAK:
        raise DecodeError("cbor: unexpected break code at offset %d" % at)
    return value, pos


def _map_entry(buf, pos, depth, result):
    at = pos
    key, pos = _item(buf, pos, depth)
    if isinstance(key, (list, dict)):
        raise DecodeError("cbor: map key at offset %d is not hashable" % at)
    value, pos = _item(buf, pos, depth)
    if key in result:
        raise DecodeError("cbor: duplicate map key at offset %d" % at)
    result[key] = value
    return pos


def _decode_simple(buf, pos, info, start):
    if info == 20:
        return False, pos
    if info == 21:
        return True, pos
    if info == 22:
        return None, pos
    if info == 25:
        _need(buf, pos, 2)
        return struct.unpack(">e", buf[pos:pos + 2])[0], pos + 2
    if info == 26:
        _need(buf, pos, 4)
        return struct.unpack(">f", buf[pos:pos + 4])[0], pos + 4
    if info == 27:
        _need(buf, pos, 8)
        return struct.unpack(">d", buf[pos:pos + 8])[0], pos + 8
    if info == 31:
        return _BREAK, pos
    if info == 24:
        _need(buf, pos, 1)
        if buf[pos] < 32:
            raise DecodeError("cbor: ill-formed two-byte simple value at offset %d" % start)
    if 28 <= info <= 30:
        raise DecodeError("cbor: reserved additional information %d at offset %d" % (info, start))
    raise DecodeError("cbor: unsupported simple value at offset %d" % start)


def _decode_indefinite(buf, pos, major, depth, start):
    if major in (2, 3):
        chunks = []
        while True:
            _need(buf, pos, 1)
            if buf[pos] == 0xFF:
                pos += 1
                break
            if buf[pos] >> 5 != major or buf[pos] & 0x1F == 31:
                raise DecodeError("cbor: bad chunk in indefinite-length string at offset %d" % pos)
            chunk, pos = _decode(buf, pos, depth + 1)
            chunks.append(chunk)
        return ("" if major == 3 else b"").join(chunks), pos
    if major == 4:
        items = []
        while True:
            item, pos = _decode(buf, pos, depth + 1)
            if item is _BREAK:
                return items, pos
            items.append(item)
    result = {}
    while True:
        _need(buf, pos, 1)
        if buf[pos] == 0xFF:
            return result, pos + 1
        pos = _map_entry(buf, pos, depth, result)


def _text(raw, pos):
    # MicroPython's decoder accepts surrogates and overlong forms, so check by hand.
    _check_utf8(raw, pos)
    return str(raw, "utf-8")


def _check_utf8(raw, pos):
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            count, low, high = 1, 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            count = 2
            low = 0xA0 if c == 0xE0 else 0x80   # no overlong forms
            high = 0x9F if c == 0xED else 0xBF  # no surrogates
        elif 0xF0 <= c <= 0xF4:
            count = 3
            low = 0x90 if c == 0xF0 else 0x80
            high = 0x8F if c == 0xF4 else 0xBF  # nothing above U+10FFFF
        else:
            raise DecodeError("cbor: invalid UTF-8 in text string at offset %d" % (pos + i))
        if i + count >= n:
            raise DecodeError("cbor: invalid UTF-8 in text string at offset %d" % (pos + i))
        if not low <= raw[i + 1] <= high:
            raise DecodeError("cbor: invalid UTF-8 in text string at offset %d" % (pos + i))
        for k in range(2, count + 1):
            if not 0x80 <= raw[i + k] <= 0xBF:
                raise DecodeError("cbor: invalid UTF-8 in text string at offset %d" % (pos + i))
        i += count + 1
