# The LoRa serial bridge's line protocol, version 1 (firmware/README.md, "LoRa serial bridge
# protocol"): lines in, values out, and DN lines back. Sans-I/O; the serial side is
# gateway/ingress/serial_bridge.py.
from dataclasses import dataclass

VERSION = "1"
MAX_LINE = 600
# What the bridge sends; any other line (the MicroPython banner, a traceback) is not ours.
KEYWORDS = ("READY", "UP", "CRC", "OK", "ERR", "PONG")
BANDWIDTHS_HZ = (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)
_CODING_RATES = ("4/5", "4/6", "4/7", "4/8")


class LineError(ValueError):
    """A line of the protocol that is not right; `reason` is the metric label."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Line:
    keyword: str  # one of KEYWORDS, or "" for a line that is not the protocol's
    fields: tuple
    text: str


def split(data):
    """A raw line (bytes, with or without its line end) as a Line."""
    if len(data) > MAX_LINE + 2:
        raise LineError("line_too_long", "a line of %d bytes (at most %d)"
                        % (len(data), MAX_LINE))
    try:
        text = data.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise LineError("not_ascii", "a line that is not ASCII: %r" % data[:40]) from None
    parts = text.split(" ")
    if parts[0] not in KEYWORDS:
        return Line("", (), text)
    return Line(parts[0], tuple(parts[1:]), text)


def _int(name, text, low, high):
    try:
        v = int(text, 10)
    except ValueError:
        raise LineError("bad_line", "%s: expected an integer, got %r" % (name, text)) from None
    if not low <= v <= high:
        raise LineError("bad_line", "%s: %d is not in %d..%d" % (name, v, low, high))
    return v


def _radio(fields):
    """tmst_us freq_hz sf bw_hz cr rssi snr -> radio metadata (bw in kHz, as elsewhere)."""
    tmst, freq, sf, bw, cr, rssi, snr = fields
    bw_hz = _int("bw_hz", bw, 0, 500000)
    if bw_hz not in BANDWIDTHS_HZ:
        raise LineError("bad_line", "bw_hz: %d is not an SX127x bandwidth" % bw_hz)
    if cr not in _CODING_RATES:
        raise LineError("bad_line", "cr: expected 4/5..4/8, got %r" % cr)
    try:
        snr_db = float(snr)
    except ValueError:
        raise LineError("bad_line", "snr: expected a decimal, got %r" % snr) from None
    if not -40 <= snr_db <= 40:
        raise LineError("bad_line", "snr: %r dB is out of range" % snr_db)
    return {"rssi": _int("rssi", rssi, -200, 50), "snr": snr_db,
            "frequency": _int("freq_hz", freq, 137000000, 1020000000),
            "sf": _int("sf", sf, 6, 12), "bw": bw_hz / 1000, "cr": cr,
            "tmst": _int("tmst_us", tmst, 0, 0xFFFFFFFF)}


def up(line):
    """(frame bytes, radio metadata) of an UP line."""
    if len(line.fields) != 8:
        raise LineError("bad_line", "UP with %d fields, expected 8" % len(line.fields))
    radio = _radio(line.fields[:7])
    try:
        raw = bytes.fromhex(line.fields[7])
    except ValueError:
        raise LineError("bad_hex", "UP payload is not hex") from None
    if not 1 <= len(raw) <= 255:
        raise LineError("bad_line", "UP payload of %d bytes" % len(raw))
    return raw, radio


def crc(line):
    """Radio metadata of a CRC line (a packet the radio heard with a bad payload CRC)."""
    if len(line.fields) != 7:
        raise LineError("bad_line", "CRC with %d fields, expected 7" % len(line.fields))
    return _radio(line.fields)


def ready(line):
    """(version, chip, radio settings) of a READY line."""
    if len(line.fields) < 1:
        raise LineError("bad_line", "READY without a version")
    if line.fields[0] != VERSION:
        raise LineError("bad_version", "bridge protocol version %r, expected %s"
                        % (line.fields[0], VERSION))
    if len(line.fields) != 6:
        raise LineError("bad_line", "READY with %d fields, expected 6" % len(line.fields))
    return line.fields[0], line.fields[1], " ".join(line.fields[2:])


def dn(data, *, tmst, frequency, sf, bw_khz, cr, power_dbm):
    """The DN line (with its line end) that transmits `data` at the bridge's tmst."""
    return ("DN %d %d %d %d %s %d %s\n" % (tmst & 0xFFFFFFFF, frequency, sf,
                                            round(bw_khz * 1000), cr, power_dbm,
                                            data.hex())).encode()
