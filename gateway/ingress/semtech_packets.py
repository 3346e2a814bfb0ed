# The Semtech UDP packet forwarder protocol, version 2 (Semtech's PROTOCOL.TXT for the
# packet forwarder): datagrams in, values out, and back. Sans-I/O; the server that uses it is
# gateway/ingress/semtech_udp.py.
#
#   byte 0      protocol version (2)
#   bytes 1-2   token (the acknowledgement repeats it)
#   byte 3      identifier
#   bytes 4-11  gateway EUI (PUSH_DATA, PULL_DATA, TX_ACK: the datagrams a gateway sends)
#   12-end      JSON (PUSH_DATA: {"rxpk": [...], "stat": {...}}; TX_ACK: optional
#               {"txpk_ack": {...}}); PULL_RESP carries {"txpk": {...}} from byte 4.
import base64
import binascii
import json
import re
from dataclasses import dataclass

VERSION = 2
PUSH_DATA = 0x00
PUSH_ACK = 0x01
PULL_DATA = 0x02
PULL_RESP = 0x03
PULL_ACK = 0x04
TX_ACK = 0x05
# What a gateway sends to the server; the other identifiers only ever go the other way.
_UPSTREAM = {PUSH_DATA: "PUSH_DATA", PULL_DATA: "PULL_DATA", TX_ACK: "TX_ACK"}
_DOWNSTREAM = (PUSH_ACK, PULL_RESP, PULL_ACK)
_EUI_END = 12

# TX_ACK "error" values: NONE is success; the rest say why the gateway refused to send.
TX_OK = "NONE"

_DATR = re.compile(r"^SF(\d{1,2})BW(\d{2,3})$")
_CODR = {"4/5": 1, "4/6": 2, "4/7": 3, "4/8": 4}
_BANDWIDTHS_KHZ = (125, 250, 500)


class PacketError(ValueError):
    """A datagram or rxpk the server cannot use; `reason` is the metric label."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Datagram:
    ident: int
    token: int
    eui: str  # 16 lower-case hex digits
    body: bytes  # what follows the EUI (JSON text, possibly empty)

    @property
    def name(self):
        return _UPSTREAM[self.ident]


def parse(data):
    """The header of a datagram a gateway sent; PacketError when it is not one."""
    if len(data) < 4:
        raise PacketError("too_short", "datagram of %d bytes is shorter than a header"
                          % len(data))
    if data[0] != VERSION:
        raise PacketError("bad_version", "protocol version %d, expected %d"
                          % (data[0], VERSION))
    ident = data[3]
    if ident in _DOWNSTREAM:
        raise PacketError("wrong_direction", "identifier 0x%02x is sent by servers, not "
                          "gateways" % ident)
    if ident not in _UPSTREAM:
        raise PacketError("unknown_identifier", "unknown identifier 0x%02x" % ident)
    if len(data) < _EUI_END:
        raise PacketError("too_short", "%s of %d bytes has no gateway EUI"
                          % (_UPSTREAM[ident], len(data)))
    return Datagram(ident, (data[1] << 8) | data[2], data[4:_EUI_END].hex(),
                    bytes(data[_EUI_END:]))


def json_body(body, *, optional=False):
    """The JSON object of a datagram; some forwarders end it with NUL bytes."""
    text = body.rstrip(b"\x00 \t\r\n")
    if not text and optional:
        return None
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise PacketError("bad_json", "not JSON: %s" % e) from None
    if not isinstance(obj, dict):
        raise PacketError("bad_json", "the JSON is not an object")
    return obj


def ack(ident, token):
    """PUSH_ACK or PULL_ACK for a datagram's token."""
    return bytes((VERSION, token >> 8, token & 0xFF, ident))


def pull_resp(token, txpk):
    return bytes((VERSION, token >> 8, token & 0xFF, PULL_RESP)) + json.dumps(
        {"txpk": txpk}, separators=(",", ":")).encode()


def _field(pk, name, kind, check=None, expect=None):
    if name not in pk:
        raise PacketError("missing_field", "rxpk without %r" % name)
    v = pk[name]
    ok = isinstance(v, kind) and not isinstance(v, bool)
    if not ok or (check is not None and not check(v)):
        raise PacketError("bad_field", "rxpk %s: expected %s, got %r"
                          % (name, expect or ("a number" if kind != str else "a string"), v))
    return v


def parse_datr(datr):
    """"SF9BW125" -> (9, 125)."""
    m = _DATR.match(datr) if isinstance(datr, str) else None
    # SF5 exists on SX126x/SX1302 radios, but not on the SX127x our nodes carry.
    if not m or not 6 <= int(m.group(1)) <= 12 or int(m.group(2)) not in _BANDWIDTHS_KHZ:
        raise PacketError("bad_field", "datr: expected a LoRa data rate such as "
                          "'SF9BW125', got %r" % (datr,))
    return int(m.group(1)), int(m.group(2))


def rxpk(pk):
    """(frame bytes, radio metadata) of one received packet; PacketError otherwise.
    Packets with a failed CRC (stat -1) or none (stat 0) are refused: they cannot be told
    from noise, and a LoRa node of ours always sends a CRC."""
    if not isinstance(pk, dict):
        raise PacketError("bad_field", "rxpk entry is not an object")
    stat = _field(pk, "stat", int, lambda v: v in (1, 0, -1), "1, 0 or -1")
    if stat == -1:
        raise PacketError("crc_bad", "packet received with a bad CRC")
    if stat == 0:
        raise PacketError("crc_missing", "packet received without a CRC")
    modu = _field(pk, "modu", str)
    if modu != "LORA":
        raise PacketError("not_lora", "modulation %r; only LoRa frames are ours" % modu)
    sf, bw = parse_datr(_field(pk, "datr", str))
    codr = _field(pk, "codr", str, lambda v: v in _CODR, "'4/5'..'4/8'")
    freq = _field(pk, "freq", (int, float), lambda v: 0 < v < 10000, "MHz")
    tmst = _field(pk, "tmst", int, lambda v: 0 <= v <= 0xFFFFFFFF, "a 32-bit counter")
    rssi = _field(pk, "rssi", (int, float))
    lsnr = _field(pk, "lsnr", (int, float))
    size = _field(pk, "size", int, lambda v: 0 <= v <= 255, "0..255")
    text = _field(pk, "data", str)
    try:
        # The forwarder pads; padding is added here so an unpadded one decodes too.
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise PacketError("bad_base64", "data is not base64: %s" % e) from None
    if len(raw) != size:
        raise PacketError("size_mismatch", "size says %d bytes, data holds %d"
                          % (size, len(raw)))
    radio = {"rssi": rssi, "snr": lsnr, "frequency": round(freq * 1e6), "sf": sf, "bw": bw,
             "cr": codr, "tmst": tmst}
    for name in ("chan", "rfch"):
        if isinstance(pk.get(name), int):
            radio[name] = pk[name]
    if isinstance(pk.get("time"), str):
        radio["time"] = pk["time"]
    return raw, radio


def tx_result(body):
    """(ok, error or warning name) of a TX_ACK body: no JSON means sent; v2 forwarders
    write {"txpk_ack": {"error": "NONE"}} or a warning that the packet went anyway."""
    obj = json_body(body, optional=True)
    if obj is None:
        return True, TX_OK
    info = obj.get("txpk_ack")
    if not isinstance(info, dict):
        raise PacketError("bad_field", "TX_ACK JSON without a txpk_ack object")
    error = info.get("error", TX_OK)
    if not isinstance(error, str):
        raise PacketError("bad_field", "txpk_ack error: expected a string, got %r" % (error,))
    if error != TX_OK:
        return False, error
    warn = info.get("warn")
    return True, warn if isinstance(warn, str) else TX_OK


def txpk(data, *, tmst, frequency, sf, bw, cr, power_dbm, preamble=8):
    """The txpk object that sends `data` at concentrator time tmst, inverted IQ as LoRa
    downlinks are (nodes do not hear each other's uplinks), with a PHY CRC: our nodes
    check it."""
    return {"imme": False, "tmst": tmst & 0xFFFFFFFF, "freq": round(frequency / 1e6, 6),
            "rfch": 0, "powe": power_dbm, "modu": "LORA", "datr": "SF%dBW%d" % (sf, bw),
            "codr": cr, "ipol": True, "prea": preamble, "size": len(data),
            "data": base64.b64encode(data).decode(), "ncrc": False}
