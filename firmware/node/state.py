# What the node remembers across deep sleep, kept in RTC memory (which deep sleep keeps and
# power loss clears): CBOR behind a magic and a CRC, so a corrupt copy after a brown-out is
# detected and treated as a cold boot.
import binascii
import struct

from protocol import cbor
from protocol.errors import DecodeError

_MAGIC = b"CE1"


def load(rtc):
    """The state dict from RTC memory, or None if there is none or it fails its check."""
    raw = rtc.memory()
    if len(raw) < 9 or raw[:3] != _MAGIC:
        return None
    length, crc = struct.unpack(">HI", raw[3:9])
    body = raw[9:9 + length]
    if len(body) != length or binascii.crc32(body) != crc:
        return None
    try:
        state = cbor.loads(body)
    except DecodeError:
        return None
    return state if isinstance(state, dict) else None


def save(rtc, state):
    body = cbor.dumps(state)
    rtc.memory(_MAGIC + struct.pack(">HI", len(body), binascii.crc32(body)) + body)
