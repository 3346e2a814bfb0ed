# Message kinds and their CBOR bodies. Every body is a CBOR array of fixed-point integers in
# a fixed order (positional: no keys on air). A reading is a dict of engineering values;
# each field states its unit, resolution and range; None means "not available" (a sensor
# fault, a value the node cannot know) and travels as CBOR null. PROTOCOL.md lists them.
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
COMMAND = 16  # the only downlink kind

# A field: (name, scale, minimum, maximum, unit). Minimum and maximum are engineering
# values; the integer on air is round(value * scale), so the resolution is 1/scale.
# Scale None: a boolean.
_U32 = 0xFFFFFFFF
FIELDS = {
    FILL: (
        ("level_pct", 2, 0, 100, "%"),
        ("distance_mm", 1, 0, 10000, "mm"),
        ("temperature_c", 10, -40, 85, "°C"),
        ("hours_to_full", 1, 0, 65535, "h"),
        ("fault", 1, 0, 255, ""),
    ),
    PARKING: (
        ("occupied", None, 0, 1, ""),
        ("minutes", 1, 0, 65535, "min"),
        ("field_ut", 10, 0, 6553.5, "µT"),
        ("overstay", None, 0, 1, ""),
        ("fault", 1, 0, 255, ""),
    ),
    CO2: (
        ("co2_ppm", 1, 0, 40000, "ppm"),
        ("temperature_c", 10, -40, 85, "°C"),
        ("humidity_pct", 2, 0, 100, "%"),
        ("fault", 1, 0, 255, ""),
    ),
    LUMINAIRE: (
        ("power_w", 10, 0, 6553.5, "W"),
        ("energy_wh", 1, 0, _U32, "Wh"),
        ("level_pct", 1, 0, 100, "%"),
        ("burn_h", 1, 0, _U32, "h"),
        ("fault", 1, 0, 255, ""),
    ),
    STATUS: (
        ("battery_mv", 1, 0, 65535, "mV"),
        ("reset_cause", 1, 0, 15, ""),
        ("faults", 1, 0, 65535, ""),
        ("fw_version", 1, 0, 999999, ""),
        ("uptime_s", 1, 0, _U32, "s"),
        ("queue_depth", 1, 0, 65535, ""),
        ("dropped", 1, 0, _U32, ""),
        ("awake_ms", 1, 0, _U32, "ms"),
        ("cycle_uah", 100, 0, 42949672.95, "µAh"),
    ),
    EVENT: (
        ("event", 1, 0, 255, ""),
        ("value", 1, -0x80000000, 0x7FFFFFFF, ""),
    ),
    ACK: (
        ("command_id", 1, 0, 65535, ""),
        ("result", 1, 0, 255, ""),
    ),
}

NAMES = {FILL: "fill", PARKING: "parking", CO2: "co2", LUMINAIRE: "luminaire",
         STATUS: "status", EVENT: "event", ACK: "ack", BATCH: "batch", COMMAND: "command"}
KINDS = {name: kind for kind, name in NAMES.items()}
READINGS = (FILL, PARKING, CO2, LUMINAIRE)  # the kinds a batch may hold

# Fault bits, shared by all kinds (the `fault` field of a reading).
FAULT_BUS = 0x01        # no answer on the bus, NACK
FAULT_CRC = 0x02        # bad CRC or checksum
FAULT_TIMEOUT = 0x04    # no data-ready / echo in time
FAULT_RANGE = 0x08      # implausible or stuck value
FAULT_LAMP = 0x10       # luminaire: commanded on, no power drawn
FAULT_POWER_BAND = 0x20  # luminaire: power outside the expected band
FAULT_AUX = 0x40        # a secondary sensor (temperature, ambient light) failed
FAULT_NAMES = ("bus", "crc", "timeout", "range", "lamp", "power_band", "aux")

# Events (EVENT kind, `event` field).
EVENTS = {1: "emptied", 2: "fire", 3: "full", 4: "occupied", 5: "free", 6: "overstay",
          7: "co2_high", 8: "co2_normal", 9: "lamp_failed", 10: "lamp_ok", 11: "power_band",
          12: "motion", 13: "recalibrated", 14: "battery_low"}

# Reset causes (STATUS kind, `reset_cause` field); numbered as machine.reset_cause() on an ESP32.
RESET_CAUSES = {1: "power_on", 2: "hard_reset", 3: "watchdog", 4: "deep_sleep", 5: "soft_reset",
                6: "brown_out"}

# Downlink commands (COMMAND kind): code -> (name, argument check). ACK results below.
SET_INTERVAL = 1
SET_THRESHOLDS = 2
DIM_OVERRIDE = 3
SET_PROFILE = 4
RECALIBRATE = 5
FORCED_RECALIBRATION = 6
REBOOT = 7
SET_STATUS_EVERY = 8
ACK_OK = 0
ACK_UNKNOWN = 1
ACK_BAD_ARGUMENT = 2
ACK_FAILED = 3


def _int_in(lo, hi):
    def check(arg):
        return isinstance(arg, int) and not isinstance(arg, bool) and lo <= arg <= hi
    return check


def _ints(n_min, n_max, lo, hi):
    one = _int_in(lo, hi)

    def check(arg):
        return isinstance(arg, list) and n_min <= len(arg) <= n_max and all(one(a) for a in arg)
    return check


def _profile(arg):
    # [[minutes after dusk, level %], ...] in time order, at most 8 steps
    if not isinstance(arg, list) or not 1 <= len(arg) <= 8:
        return False
    last = -1
    for step in arg:
        if not _ints(2, 2, 0, 1440)(step) or step[1] > 100 or step[0] <= last:
            return False
        last = step[0]
    return True


COMMANDS = {
    SET_INTERVAL: ("set_interval", _int_in(10, 86400)),          # seconds between readings
    SET_THRESHOLDS: ("set_thresholds", _ints(1, 4, 0, 65535)),   # kind-specific, see PROTOCOL.md
    DIM_OVERRIDE: ("dim_override", _ints(2, 2, 0, 1440)),        # [level %, minutes (0: clear)]
    SET_PROFILE: ("set_profile", _profile),
    RECALIBRATE: ("recalibrate", lambda arg: arg is None),       # parking baseline
    FORCED_RECALIBRATION: ("forced_recalibration", _int_in(400, 2000)),  # CO2 reference ppm
    REBOOT: ("reboot", lambda arg: arg is None),
    SET_STATUS_EVERY: ("set_status_every", _int_in(1, 1000)),    # status frame every N cycles
}


def kind_name(kind):
    return NAMES.get(kind, str(kind))


def _where(kind, name):
    return "%s.%s" % (kind_name(kind), name)


def _to_raw(kind, spec, value):
    name, scale, lo, hi, unit = spec
    if value is None:
        return None
    if scale is None:
        if value is True or value is False:
            return value
        raise SchemaError("%s: %r is not a boolean" % (_where(kind, name), value))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError("%s: %r is not a number" % (_where(kind, name), value))
    if value != value:
        raise SchemaError("%s: NaN is not a value" % _where(kind, name))
    if not lo <= value <= hi:
        raise SchemaError("%s: %r is out of range %s..%s %s"
                          % (_where(kind, name), value, lo, hi, unit))
    return int(round(value * scale))


def _from_raw(kind, spec, raw):
    name, scale, lo, hi, unit = spec
    if raw is None:
        return None
    if scale is None:
        if raw is True or raw is False:
            return raw
        raise SchemaError("%s: %r on air is not a boolean" % (_where(kind, name), raw))
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise SchemaError("%s: %r on air is not an integer" % (_where(kind, name), raw))
    value = raw if scale == 1 else raw / scale
    if not lo <= value <= hi:
        raise SchemaError("%s: %r on air is out of range %s..%s %s"
                          % (_where(kind, name), value, lo, hi, unit))
    return value


def _fields(kind):
    try:
        return FIELDS[kind]
    except KeyError:
        raise SchemaError("unknown message kind %r" % (kind,)) from None


def encode(kind, reading):
    """The CBOR body for one message of a kind (not BATCH or COMMAND: see encode_batch,
    encode_command)."""
    if kind == COMMAND:
        return encode_command(reading["command_id"], reading["command"], reading.get("arg"))
    if not isinstance(reading, dict):
        raise SchemaError("%s: a reading must be a dict" % kind_name(kind))
    specs = _fields(kind)
    known = [spec[0] for spec in specs]
    for key in reading:
        if key not in known:
            raise SchemaError("%s: unknown field %r" % (_where(kind, key), key))
    return cbor.dumps([_to_raw(kind, spec, reading.get(spec[0])) for spec in specs])


def _load(kind, body):
    try:
        return cbor.loads(body)
    except DecodeError as e:
        raise SchemaError("%s: body is not valid CBOR (%s)" % (kind_name(kind), e)) from None


def decode(kind, body):
    """The message a CBOR body holds, as a dict; BATCH and COMMAND bodies included."""
    if kind == BATCH:
        return decode_batch(body)
    if kind == COMMAND:
        return decode_command(body)
    specs = _fields(kind)
    values = _load(kind, body)
    if not isinstance(values, list) or len(values) != len(specs):
        raise SchemaError("%s: body must be an array of %d values" % (kind_name(kind), len(specs)))
    return {spec[0]: _from_raw(kind, spec, raw) for spec, raw in zip(specs, values)}


# ---------------------------------------------------------------- batches
#
# [kind, n, step_s, newest_age_s, column, column, ...]: n readings of one kind taken step_s
# apart, the newest newest_age_s before the frame was sent. One column per field, holding
# that field for every reading, oldest first: either one value that all readings share, or
# an array of n items where the first integer is absolute and each later integer is the
# difference from the previous integer in the column (nulls and booleans are literal).
# Slowly changing fields then cost one byte per reading.

MAX_BATCH = 32


def encode_batch(kind, readings, step_s, newest_age_s=0):
    if kind not in READINGS:
        raise SchemaError("batch: kind %s cannot be batched" % kind_name(kind))
    if not 1 <= len(readings) <= MAX_BATCH:
        raise SchemaError("batch: 1..%d readings, got %d" % (MAX_BATCH, len(readings)))
    if not (_int_in(1, 86400)(step_s) and _int_in(0, _U32)(newest_age_s)):
        raise SchemaError("batch: step_s must be 1..86400 and newest_age_s 0..2^32-1")
    rows = [cbor.loads(encode(kind, r)) for r in readings]
    body = [kind, len(rows), step_s, newest_age_s]
    for i in range(len(FIELDS[kind])):
        body.append(_column([row[i] for row in rows]))
    return cbor.dumps(body)


def _column(values):
    first = values[0]
    if all(v is first or v == first and type(v) is type(first) for v in values):
        return first
    out = []
    last = None
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool):
            out.append(v if last is None else v - last)
            last = v
        else:
            out.append(v)
    return out


def _uncolumn(column, n, where):
    if not isinstance(column, list):
        return [column] * n
    if len(column) != n:
        raise SchemaError("%s: column has %d items for %d readings" % (where, len(column), n))
    out = []
    last = None
    for item in column:
        if isinstance(item, int) and not isinstance(item, bool):
            last = item if last is None else last + item
            out.append(last)
        else:
            out.append(item)
    return out


def decode_batch(body):
    values = _load(BATCH, body)
    if not isinstance(values, list) or len(values) < 5:
        raise SchemaError("batch: body must be [kind, n, step_s, newest_age_s, columns...]")
    kind, n, step_s, newest_age_s = values[0], values[1], values[2], values[3]
    if kind not in READINGS:
        raise SchemaError("batch: kind %r cannot be batched" % (kind,))
    if not _int_in(1, MAX_BATCH)(n):
        raise SchemaError("batch: n must be 1..%d, got %r" % (MAX_BATCH, n))
    if not (_int_in(1, 86400)(step_s) and _int_in(0, _U32)(newest_age_s)):
        raise SchemaError("batch: bad step_s or newest_age_s")
    specs = FIELDS[kind]
    columns = values[4:]
    if len(columns) != len(specs):
        raise SchemaError("batch: %s needs %d columns, got %d"
                          % (kind_name(kind), len(specs), len(columns)))
    cols = [_uncolumn(c, n, _where(kind, s[0])) for c, s in zip(columns, specs)]
    readings = []
    for i in range(n):
        reading = {s[0]: _from_raw(kind, s, col[i]) for s, col in zip(specs, cols)}
        reading["age_s"] = newest_age_s + (n - 1 - i) * step_s
        readings.append(reading)
    return {"kind": kind_name(kind), "step_s": step_s, "readings": readings}


# ---------------------------------------------------------------- downlink commands
#
# COMMAND body: [command_id, code, argument]; the node answers with an ACK
# [command_id, result] in its next uplink.

def _check_command(command_id, code, arg):
    if not _int_in(0, 65535)(command_id):
        raise SchemaError("command.command_id: %r is not 0..65535" % (command_id,))
    if code not in COMMANDS:
        raise SchemaError("command.code: unknown command %r" % (code,))
    name, valid = COMMANDS[code]
    if not valid(arg):
        raise SchemaError("command.%s: bad argument %r" % (name, arg))
    return name


def command_code(name):
    for code, (known, _) in COMMANDS.items():
        if known == name:
            return code
    raise SchemaError("command: unknown command %r" % (name,))


def encode_command(command_id, command, arg=None):
    code = command_code(command) if isinstance(command, str) else command
    _check_command(command_id, code, arg)
    return cbor.dumps([command_id, code, arg])


def decode_command(body):
    values = _load(COMMAND, body)
    if not isinstance(values, list) or len(values) != 3:
        raise SchemaError("command: body must be [command_id, code, argument]")
    name = _check_command(values[0], values[1], values[2])
    return {"command_id": values[0], "command": name, "arg": values[2]}
