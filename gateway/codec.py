# The protocol's frame and body codecs, arranged for a gateway that handles thousands of
# frames a second. protocol/ is written for MicroPython first: its AES-CMAC, AES-CTR and CBOR
# are pure Python, and protocol.schema keeps only the last body table parsed (to spare a
# node's heap), so a gateway alternating between a reading and a receipt parsed both every
# time. Here: CMAC and CTR from `cryptography` with keys prepared once per device, `cbor2`
# for the common body (checked to be exactly what protocol/ would read, else protocol/
# decides), and each table parsed once. Same bytes, values and errors as protocol/, which
# tests/gateway/test_codec.py checks on every kind, on altered frames and on random bodies.
import hmac
import struct

import cbor2
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from protocol import frame, schema
from protocol.crypto import AES, BLOCK
from protocol.errors import FrameError, MICError, SchemaError

# protocol.frame.Keys: K_enc = AES(K, 01 | 0^15), K_mic = AES(K, 02 | 0^15) (PROTOCOL.md 2)
_ENC_TAG = b"\x01" + bytes(BLOCK - 1)
_MIC_TAG = b"\x02" + bytes(BLOCK - 1)
_MASK128 = (1 << 128) - 1


class SessionKeys:
    """What protocol.frame.Keys holds (`enc`, an AES; `mic`, with `digest`), so that
    protocol.frame works with it too, plus the prepared `cryptography` objects."""

    __slots__ = ("enc", "mic", "_ecb", "_mic_base")

    def __init__(self, device_key):
        root = AES(device_key)
        k_enc = root.encrypt_block(_ENC_TAG)
        k_mic = root.encrypt_block(_MIC_TAG)
        self.enc = AES(k_enc)
        self.mic = self
        # An ECB context is stateless between blocks, so one serves every frame (a new CTR
        # context per frame would cost more than all the rest of the decryption).
        self._ecb = Cipher(algorithms.AES(k_enc), modes.ECB()).encryptor().update
        self._mic_base = cmac.CMAC(algorithms.AES(k_mic))

    def digest(self, message):
        """AES-CMAC (RFC 4493) of message under K_mic."""
        c = self._mic_base.copy()
        c.update(bytes(message))
        return c.finalize()

    def ctr(self, initial_block, data):
        """AES-CTR under K_enc; the counter block counts up as one 128-bit big-endian
        integer, as in protocol.crypto.ctr (NIST SP 800-38A)."""
        n = len(data)
        if not n:
            return b""
        if n <= BLOCK:
            stream = self._ecb(initial_block)[:n]
        else:
            first = int.from_bytes(initial_block, "big")
            stream = self._ecb(b"".join([((first + i) & _MASK128).to_bytes(BLOCK, "big")
                                         for i in range((n + BLOCK - 1) // BLOCK)]))[:n]
        return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def _block(tag, direction, addr, fcnt, last):
    # PROTOCOL.md sections 3 and 4: tag | dir | 0 | addr(3) | fcnt(4) | 0^5 | last
    return struct.pack(">BBBBHI5xB", tag, direction, 0, addr >> 16, addr & 0xFFFF, fcnt, last)


def seal(keys, kind, addr, fcnt, body, direction=frame.UP):
    """protocol.frame.seal with SessionKeys."""
    if not (0 <= kind <= 31 and direction in (frame.UP, frame.DOWN)
            and 0 <= addr <= frame.MAX_ADDR and 0 <= fcnt <= frame.MAX_FCNT):
        return frame.seal(keys, kind, addr, fcnt, body, direction)  # raises its FrameError
    if not 1 <= len(body) <= frame.MAX_BODY:
        raise FrameError("frame: body of %d bytes is not 1..%d" % (len(body), frame.MAX_BODY))
    msg = struct.pack(">BBHH", (kind << 3) | (direction << 2) | frame.VERSION,
                      addr >> 16, addr & 0xFFFF, fcnt & 0xFFFF) \
        + keys.ctr(_block(0x01, direction, addr, fcnt, 1), body)
    return msg + keys.digest(_block(0x49, direction, addr, fcnt, len(msg)) + msg)[:frame.MIC_LEN]


def unseal(keys, data, fcnt):
    """protocol.frame.unseal with SessionKeys: the decrypted body, or MICError."""
    hdr = frame.parse_header(data)
    if fcnt & 0xFFFF != hdr.fcnt_low:
        raise FrameError("frame: counter %d does not match the low bits %d on air"
                         % (fcnt, hdr.fcnt_low))
    msg = bytes(data[:-frame.MIC_LEN])
    expected = keys.digest(_block(0x49, hdr.direction, hdr.addr, fcnt, len(msg)) + msg)
    if not hmac.compare_digest(expected[:frame.MIC_LEN], bytes(data[-frame.MIC_LEN:])):
        raise MICError("frame: bad MIC for device %06x counter %d" % (hdr.addr, fcnt))
    return keys.ctr(_block(0x01, hdr.direction, hdr.addr, fcnt, 1), msg[frame.HEADER_LEN:])


_specs = {}


def _fields(kind):
    specs = _specs.get(kind)
    if specs is None:
        specs = _specs[kind] = schema.fields(kind)
    return specs


def _array_of_scalars(body):
    """The list a body holds when it is a definite array of integers, null and booleans in
    the encoding protocol.cbor writes (re-encoding gives the same bytes, so the strict
    decoder reads the same values); None for anything else, left to protocol.cbor."""
    try:
        values = cbor2.loads(body)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError):
        return None
    if type(values) is not list:
        return None
    for v in values:
        if not (v is None or type(v) is int or type(v) is bool):
            return None
    try:
        return values if cbor2.dumps(values) == bytes(body) else None
    except (cbor2.CBOREncodeError, ValueError, OverflowError):
        return None


def decode(kind, body):
    """protocol.schema.decode, with the kind's table parsed once."""
    if kind in (schema.BATCH, schema.COMMAND):
        return schema.decode(kind, body)
    specs = _fields(kind)
    values = _array_of_scalars(body)
    if values is None:
        values = schema.load(kind, body)
    if not isinstance(values, list) or len(values) != len(specs):
        raise SchemaError("%s: body must be an array of %d values"
                          % (schema.kind_name(kind), len(specs)))
    return {spec[0]: schema.from_raw(kind, spec, raw) for spec, raw in zip(specs, values)}


def receipt(fcnt, commands):
    """protocol.schema.encode(RECEIPT, {"fcnt": fcnt, "commands": commands})."""
    values = {"fcnt": fcnt, "commands": commands}
    raw = []
    for name, scale, lo, hi, unit in _fields(schema.RECEIPT):
        value = values[name]
        if not schema.is_int(value) or not lo <= value <= hi:
            raise SchemaError("receipt.%s: %r is out of range %s..%s" % (name, value, lo, hi))
        raw.append(value * scale)
    return cbor2.dumps(raw)
