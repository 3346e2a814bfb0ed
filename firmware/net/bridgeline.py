# The LoRa serial bridge's line protocol, version 1 (firmware/README.md, "LoRa serial
# bridge protocol"): formatting the bridge's lines and parsing the host's. Pure functions,
# tested on CPython and MicroPython alike.
VERSION = 1
MAX_LINE = 600
TMST_MASK = 0xFFFFFFFF
_HALF = 0x80000000
BANDWIDTHS_HZ = (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)
FREQ_MIN_HZ = 137000000   # SX1276 datasheet 2.5: RFO_HF/PA_BOOST bands together span
FREQ_MAX_HZ = 1020000000  # 137-1020 MHz
POWER_MIN_DBM = 2         # PA_BOOST, datasheet 5.4.2
POWER_MAX_DBM = 17


class LineError(ValueError):
    """A host line the bridge refuses: `reason` is the ERR reason of the protocol."""

    def __init__(self, reason, detail=""):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def line(self):
        return "ERR " + self.reason + (" " + self.detail if self.detail else "")


def snr_text(snr_x4):
    """The SNR register's quarter-dB steps as a short decimal: 29 -> 7.25, -10 -> -2.5."""
    text = "%.2f" % (snr_x4 / 4)
    return text.rstrip("0").rstrip(".")


def ready(chip, freq_hz, sf, bw_hz, cr):
    return "READY %d %s %d %d %d 4/%d" % (VERSION, chip, freq_hz, sf, bw_hz, cr)


def up(tmst, freq_hz, sf, bw_hz, cr, rssi, snr_x4, payload):
    return "UP %d %d %d %d 4/%d %d %s %s" % (tmst & TMST_MASK, freq_hz, sf, bw_hz, cr, rssi,
                                             snr_text(snr_x4), payload.hex())


def crc(tmst, freq_hz, sf, bw_hz, cr, rssi, snr_x4):
    return "CRC %d %d %d %d 4/%d %d %s" % (tmst & TMST_MASK, freq_hz, sf, bw_hz, cr, rssi,
                                          snr_text(snr_x4))


def pong(tmst):
    return "PONG %d %d" % (VERSION, tmst & TMST_MASK)


def ok(tmst):
    return "OK %d" % (tmst & TMST_MASK)


def ahead_us(tmst, now):
    """How far tmst lies ahead of now on the wrapping 32-bit clock (negative: passed)."""
    return ((tmst - now + _HALF) & TMST_MASK) - _HALF


def _int(fields, i, name, low, high):
    try:
        value = int(fields[i])
    except (IndexError, ValueError):
        raise LineError("syntax", name)
    if not low <= value <= high:
        raise LineError("param", "%s %d" % (name, value))
    return value


def parse(line):
    """A host line as ("PING", None) or ("DN", dict of tmst (None: now), freq_hz, sf,
    bw_hz, cr (5..8), power, payload); LineError for anything else."""
    if len(line) > MAX_LINE:
        raise LineError("syntax", "line too long")
    fields = line.strip().split()
    if not fields:
        raise LineError("syntax", "empty line")
    if fields[0] == "PING" and len(fields) == 1:
        return "PING", None
    if fields[0] != "DN":
        raise LineError("syntax", "unknown line")
    if len(fields) != 8:
        raise LineError("syntax", "DN has 7 fields")
    tmst = None if fields[1] == "NOW" else _int(fields, 1, "tmst_us", 0, TMST_MASK)
    freq = _int(fields, 2, "freq_hz", FREQ_MIN_HZ, FREQ_MAX_HZ)
    sf = _int(fields, 3, "sf", 6, 12)
    bw = _int(fields, 4, "bw_hz", 0, 500000)
    if bw not in BANDWIDTHS_HZ:
        raise LineError("param", "bw_hz %d" % bw)
    cr = fields[5]
    if len(cr) != 3 or cr[:2] != "4/" or cr[2] not in "5678":
        raise LineError("param", "cr " + cr)
    power = _int(fields, 6, "power", POWER_MIN_DBM, POWER_MAX_DBM)
    text = fields[7]
    if len(text) % 2:
        raise LineError("syntax", "hex")
    try:
        payload = bytes.fromhex(text)
    except ValueError:
        raise LineError("syntax", "hex")
    if not 1 <= len(payload) <= 255:
        raise LineError("param", "length %d" % len(payload))
    return "DN", {"tmst": tmst, "freq_hz": freq, "sf": sf, "bw_hz": bw, "cr": int(cr[2]),
                  "power": power, "payload": payload}
