# The cityedge frame: header, AES-CTR encrypted body, 4-byte AES-CMAC MIC.
# PROTOCOL.md gives every byte with a worked example. Sans-I/O: bytes in, values out.
#
#   byte 0      FHDR   kind (bits 7..3) | direction (bit 2) | version (bits 1..0)
#   bytes 1-3   ADDR   device address, 24-bit big-endian
#   bytes 4-5   FCNT   low 16 bits of the 32-bit frame counter, big-endian
#   bytes 6..   BODY   encrypted CBOR body (1..MAX_BODY bytes)
#   last 4      MIC    first 4 bytes of AES-CMAC(K_mic, B0 | FHDR..BODY)
import struct

from protocol.crypto import AES, CMAC, ctr
from protocol.errors import FrameError, MICError

VERSION = 1
UP = 0
DOWN = 1

HEADER_LEN = 6
MIC_LEN = 4
OVERHEAD = HEADER_LEN + MIC_LEN
MAX_FRAME = 255  # the largest LoRa payload
MAX_BODY = MAX_FRAME - OVERHEAD
MAX_ADDR = 0xFFFFFF
MAX_FCNT = 0xFFFFFFFF

class Keys:
    """The two session keys derived from one 128-bit device key, so that the same key
    is never used both to encrypt and to authenticate (as in LoRaWAN 1.1)."""

    def __init__(self, device_key):
        root = AES(device_key)
        self.enc = AES(root.encrypt_block(b"\x01" + bytes(15)))
        self.mic = CMAC(root.encrypt_block(b"\x02" + bytes(15)))


class Header:
    def __init__(self, version, direction, kind, addr, fcnt_low):
        self.version = version
        self.direction = direction
        self.kind = kind
        self.addr = addr
        self.fcnt_low = fcnt_low


def parse_header(frame):
    """Read the clear-text header (enough to look up the device); checks size and version."""
    n = len(frame)
    if n < OVERHEAD + 1:
        raise FrameError("frame: truncated, %d bytes (the minimum is %d)" % (n, OVERHEAD + 1))
    if n > MAX_FRAME:
        raise FrameError("frame: oversized, %d bytes (the maximum is %d)" % (n, MAX_FRAME))
    fhdr = frame[0]
    version = fhdr & 0x03
    if version != VERSION:
        raise FrameError("frame: version %d is not supported (not a cityedge v%d frame)"
                         % (version, VERSION))
    addr = (frame[1] << 16) | (frame[2] << 8) | frame[3]
    fcnt_low = (frame[4] << 8) | frame[5]
    return Header(version, (fhdr >> 2) & 1, fhdr >> 3, addr, fcnt_low)


def _block(tag, direction, addr, fcnt, last):
    # 16 bytes: tag | dir | 0 | addr(3) | fcnt(4) | 0 0 0 0 0 | last
    return struct.pack(">BBBBHI5xB", tag, direction, 0, addr >> 16, addr & 0xFFFF, fcnt, last)


def _check_fields(kind, direction, addr, fcnt):
    if not 0 <= kind <= 31:
        raise FrameError("frame: kind %r is not 0..31" % (kind,))
    if direction not in (UP, DOWN):
        raise FrameError("frame: direction must be UP (0) or DOWN (1)")
    if not 0 <= addr <= MAX_ADDR:
        raise FrameError("frame: address %r is not 24-bit" % (addr,))
    if not 0 <= fcnt <= MAX_FCNT:
        raise FrameError("frame: counter %r is not 32-bit" % (fcnt,))


def seal(keys, kind, addr, fcnt, body, direction=UP):
    """Build a frame: encrypt the CBOR body and append the MIC."""
    _check_fields(kind, direction, addr, fcnt)
    if not 1 <= len(body) <= MAX_BODY:
        raise FrameError("frame: body of %d bytes is not 1..%d" % (len(body), MAX_BODY))
    header = struct.pack(">BBHH", (kind << 3) | (direction << 2) | VERSION,
                         addr >> 16, addr & 0xFFFF, fcnt & 0xFFFF)
    msg = header + ctr(keys.enc, _block(0x01, direction, addr, fcnt, 1), body)
    return msg + mic(keys, msg, direction, addr, fcnt)


def mic(keys, msg, direction, addr, fcnt):
    """The 4-byte MIC of msg (header and encrypted body) for the full 32-bit counter."""
    b0 = _block(0x49, direction, addr, fcnt, len(msg))
    return keys.mic.digest(b0 + bytes(msg))[:MIC_LEN]


def unseal(keys, frame, fcnt):
    """Check the MIC of a frame for its full counter and return the decrypted body.
    Raises MICError when the key, the counter or any byte is wrong."""
    hdr = parse_header(frame)
    if fcnt & 0xFFFF != hdr.fcnt_low:
        raise FrameError("frame: counter %d does not match the low bits %d on air"
                         % (fcnt, hdr.fcnt_low))
    msg = bytes(frame[:-MIC_LEN])
    expected = mic(keys, msg, hdr.direction, hdr.addr, fcnt)
    if not _equal(expected, frame[-MIC_LEN:]):
        raise MICError("frame: bad MIC for device %06x counter %d" % (hdr.addr, fcnt))
    return ctr(keys.enc, _block(0x01, hdr.direction, hdr.addr, fcnt, 1), msg[HEADER_LEN:])


def _equal(a, b):
    # Constant time, so timing does not tell an attacker how many MIC bytes were right.
    diff = 0
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0 and len(a) == len(b)
