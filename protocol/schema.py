# Message kinds and the CBOR bodies of single messages. Every body is a CBOR array of
# fixed-point integers in a fixed order (positional: no keys on air). A reading is a dict of
# engineering values; each field states its unit, resolution and range; None means "not
# available" (a sensor fault, a value the node cannot know) and travels as CBOR null.
# Batches are in batch.py, downlink commands in command.py, display names in names.py, so
# that a node imports only what a cycle needs. PROTOCOL.md lists every field.
from protocol import cbor
from protocol.errors import DecodeError, SchemaError

# Message kinds (5 bits in the frame header).
FILL = 1
PARKING = 2
CO2 = 3
LUMINAIRE = 4
STATUS = 8
EVENT = 9
ACK = 10
BATCH = 11
RECEIPT = 12  # downlink: the gateway has the uplink with this counter
COMMAND = 16  # downlink
READINGS = (FILL, PARKING, CO2, LUMINAIRE)  # the kinds a batch may hold

# Fault bits, shared by all kinds (the `fault` field of a reading).
FAULT_BUS = 1         # no answer on the bus, NACK
FAULT_CRC = 2         # bad CRC or checksum
FAULT_TIMEOUT = 4     # no data-ready / echo in time
FAULT_RANGE = 8       # implausible or stuck value
FAULT_LAMP = 16       # luminaire: commanded on, no power drawn
FAULT_POWER_BAND = 32  # luminaire: power outside the expected band
FAULT_AUX = 64        # a secondary sensor (thermometer, ambient light) failed
# Node faults (only in the `faults` field of a status, next to the readings' bits).
FAULT_CONFIG = 0x100   # config.json or device.key is broken: the node runs in safe mode
FAULT_LINK = 0x200     # a transport could not deliver (no network, no receipt)
FAULT_QUEUE = 0x400    # the flash queue was full and dropped frames
FAULT_APP = 0x800      # the sensor app could not start

# The fields of each kind, in their order on air: name, scale, minimum, maximum, unit.
# The integer on air is round(value * scale), so the resolution is 1/scale; minimum and
# maximum are engineering values; scale "bool" is a boolean. Kept as text and read when
# used: as tuples these tables would hold 5 KB of a node's heap for good.
_TABLES = {
    FILL: """
        level_pct      2    0     100          %
        distance_mm    1    0     10000        mm
        temperature_c  10   -40   85           °C
        hours_to_full  1    0     65535        h
        fault          1    0     255
    """,
    PARKING: """
        occupied       bool
        minutes        1    0     65535        min
        field_ut       10   0     6553.5       µT
        overstay       bool
        fault          1    0     255
    """,
    CO2: """
        co2_ppm        1    0     40000        ppm
        temperature_c  10   -40   85           °C
        humidity_pct   2    0     100          %
        fault          1    0     255
    """,
    LUMINAIRE: """
        power_w        10   0     6553.5       W
        energy_wh      1    0     4294967295   Wh
        level_pct      1    0     100          %
        burn_h         1    0     4294967295   h
        fault          1    0     255
    """,
    STATUS: """
        battery_mv     1    0     65535        mV
        reset_cause    1    0     15
        faults         1    0     65535
        fw_version     1    0     999999
        uptime_s       1    0     4294967295   s
        queue_depth    1    0     65535
        dropped        1    0     4294967295
        awake_ms       1    0     4294967295   ms
        cycle_uah      100  0     42949672.95  µAh
    """,
    EVENT: """
        event          1    0     255
        value          1    -2147483648  2147483647
    """,
    ACK: """
        command_id     1    0     65535
        result         1    0     255
    """,
    RECEIPT: """
        fcnt           1    0     4294967295
        commands       1    0     255
    """,
}
_parsed = [None, None]  # the last kind read, and its fields


def _number(text):
    return float(text) if "." in text else int(text)


def fields(kind):
    """The fields of a kind: a tuple of (name, scale, minimum, maximum, unit); scale None
    marks a boolean."""
    if _parsed[0] == kind:
        return _parsed[1]
    if kind not in _TABLES:
        raise SchemaError("unknown message kind %r" % (kind,))
    specs = []
    for line in _TABLES[kind].split("\n"):
        cells = line.split()
        if len(cells) == 2:
            specs.append((cells[0], None, 0, 1, ""))
        elif cells:
            unit = cells[4] if len(cells) > 4 else ""
            specs.append((cells[0], int(cells[1]), _number(cells[2]), _number(cells[3]), unit))
    _parsed[0], _parsed[1] = kind, tuple(specs)
    return _parsed[1]


def kinds():
    """Every kind with a single-message body (not BATCH, not COMMAND)."""
    return sorted(_TABLES)


_NAMES = ("", "fill", "parking", "co2", "luminaire", "", "", "", "status", "event", "ack",
          "batch", "receipt", "", "", "", "command")


def kind_name(kind):
    name = _NAMES[kind] if isinstance(kind, int) and 0 <= kind < len(_NAMES) else ""
    return name or str(kind)


def kind_number(name):
    if name and name in _NAMES:
        return _NAMES.index(name)
    raise SchemaError("unknown message kind %r" % (name,))


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _to_raw(kind, spec, value):
    name, scale, lo, hi, unit = spec
    if value is None:
        return None
    if scale is None:
        if value is True or value is False:
            return value
        raise SchemaError("%s.%s: %r is not a boolean" % (kind_name(kind), name, value))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError("%s.%s: %r is not a number" % (kind_name(kind), name, value))
    if value != value:
        raise SchemaError("%s.%s: NaN is not a value" % (kind_name(kind), name))
    if not lo <= value <= hi:
        raise SchemaError("%s.%s: %r is out of range %s..%s %s"
                          % (kind_name(kind), name, value, lo, hi, unit))
    return int(round(value * scale))


def from_raw(kind, spec, raw):
    """The engineering value of a field's integer on air; checks type and range."""
    name, scale, lo, hi, unit = spec
    if raw is None:
        return None
    if scale is None:
        if raw is True or raw is False:
            return raw
        raise SchemaError("%s.%s: %r on air is not a boolean" % (kind_name(kind), name, raw))
    if not is_int(raw):
        raise SchemaError("%s.%s: %r on air is not an integer" % (kind_name(kind), name, raw))
    value = raw if scale == 1 else raw / scale
    if not lo <= value <= hi:
        raise SchemaError("%s.%s: %r on air is out of range %s..%s %s"
                          % (kind_name(kind), name, value, lo, hi, unit))
    return value


def to_raw(kind, reading):
    """The list of integers on air for a reading (a dict of engineering values)."""
    if not isinstance(reading, dict):
        raise SchemaError("%s: a reading must be a dict" % kind_name(kind))
    specs = fields(kind)
    for key in reading:
        if not any(spec[0] == key for spec in specs):
            raise SchemaError("%s.%s: unknown field" % (kind_name(kind), key))
    return [_to_raw(kind, spec, reading.get(spec[0])) for spec in specs]


def encode(kind, reading):
    """The CBOR body of one reading, status, event, ack or receipt."""
    return cbor.dumps(to_raw(kind, reading))


def load(kind, body):
    """The CBOR of a body; a body that is not CBOR is a SchemaError naming the kind."""
    try:
        return cbor.loads(body)
    except DecodeError as e:
        raise SchemaError("%s: body is not valid CBOR (%s)" % (kind_name(kind), e))


def decode(kind, body):
    """The message a CBOR body holds, as a dict; BATCH and COMMAND bodies included."""
    if kind == BATCH:
        from protocol import batch
        return batch.decode(body)
    if kind == COMMAND:
        from protocol import command
        return command.decode(body)
    specs = fields(kind)
    values = load(kind, body)
    if not isinstance(values, list) or len(values) != len(specs):
        raise SchemaError("%s: body must be an array of %d values" % (kind_name(kind), len(specs)))
    return {spec[0]: from_raw(kind, spec, raw) for spec, raw in zip(specs, values)}
