# Downlink commands (kind COMMAND) and their acknowledgements (kind ACK).
#
# COMMAND body: [command_id, code, argument]; the node answers with an ACK
# [command_id, result] in its next uplink.
from protocol import cbor, schema
from protocol.errors import SchemaError

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

# code: (name, argument). Argument: None (no argument), (lo, hi) an integer, or
# (n_min, n_max, lo, hi) a list of n_min..n_max integers; "profile" is checked below.
COMMANDS = {
    SET_INTERVAL: ("set_interval", (10, 86400)),              # seconds between readings
    SET_THRESHOLDS: ("set_thresholds", (1, 4, 0, 65535)),     # by kind, see PROTOCOL.md
    DIM_OVERRIDE: ("dim_override", (2, 2, 0, 1440)),          # [level %, minutes (0: clear)]
    SET_PROFILE: ("set_profile", "profile"),                  # [[min after dusk, level %]...]
    RECALIBRATE: ("recalibrate", None),                       # parking baseline
    FORCED_RECALIBRATION: ("forced_recalibration", (400, 2000)),  # CO2 reference, ppm
    REBOOT: ("reboot", None),
    SET_STATUS_EVERY: ("set_status_every", (1, 1000)),        # status every N cycles
}
_PROFILE_STEPS = 8


def _ints_in(arg, n_min, n_max, lo, hi):
    return (isinstance(arg, list) and n_min <= len(arg) <= n_max
            and all(schema.is_int(a) and lo <= a <= hi for a in arg))


def _valid(rule, arg):
    if rule is None:
        return arg is None
    if rule == "profile":
        if not isinstance(arg, list) or not 1 <= len(arg) <= _PROFILE_STEPS:
            return False
        last = -1
        for step in arg:
            if not _ints_in(step, 2, 2, 0, 1440) or step[1] > 100 or step[0] <= last:
                return False
            last = step[0]
        return True
    if len(rule) == 2:
        return schema.is_int(arg) and rule[0] <= arg <= rule[1]
    return _ints_in(arg, *rule)


def check(command_id, code, arg):
    """The command's name, or SchemaError naming what is wrong."""
    if not (schema.is_int(command_id) and 0 <= command_id <= 65535):
        raise SchemaError("command.command_id: %r is not 0..65535" % (command_id,))
    if code not in COMMANDS:
        raise SchemaError("command.code: unknown command %r" % (code,))
    name, rule = COMMANDS[code]
    if not _valid(rule, arg):
        raise SchemaError("command.%s: bad argument %r" % (name, arg))
    return name


def code_of(name):
    for code in COMMANDS:
        if COMMANDS[code][0] == name:
            return code
    raise SchemaError("command: unknown command %r" % (name,))


def encode(command_id, command, arg=None):
    """The COMMAND body; command is a name ("set_interval") or a code."""
    code = code_of(command) if isinstance(command, str) else command
    check(command_id, code, arg)
    return cbor.dumps([command_id, code, arg])


def decode(body):
    values = schema.load(schema.COMMAND, body)
    if not isinstance(values, list) or len(values) != 3:
        raise SchemaError("command: body must be [command_id, code, argument]")
    name = check(values[0], values[1], values[2])
    return {"command_id": values[0], "command": name, "arg": values[2]}
