# Batches (kind BATCH): several readings of one kind in one frame.
#
# [kind, n, step_s, newest_age_s, column, column, ...]: n readings of one kind taken step_s
# apart, the newest newest_age_s before the frame was sent. One column per field, holding
# that field for every reading, oldest first: either one value that all readings share, or
# an array of n items where the first integer is absolute and each later integer is the
# difference from the previous integer in the column (nulls and booleans are literal).
# Slowly changing fields then cost one byte per reading.
from protocol import cbor, schema
from protocol.errors import SchemaError

MAX_BATCH = 32
_MAX_STEP = 86400
_U32 = 0xFFFFFFFF


def _check_times(step_s, newest_age_s):
    if not (schema.is_int(step_s) and 1 <= step_s <= _MAX_STEP):
        raise SchemaError("batch: step_s %r is not 1..%d" % (step_s, _MAX_STEP))
    if not (schema.is_int(newest_age_s) and 0 <= newest_age_s <= _U32):
        raise SchemaError("batch: newest_age_s %r is not 0..2^32-1" % (newest_age_s,))


def encode(kind, readings, step_s, newest_age_s=0):
    if kind not in schema.READINGS:
        raise SchemaError("batch: kind %s cannot be batched" % schema.kind_name(kind))
    if not 1 <= len(readings) <= MAX_BATCH:
        raise SchemaError("batch: 1..%d readings, got %d" % (MAX_BATCH, len(readings)))
    _check_times(step_s, newest_age_s)
    rows = [schema.to_raw(kind, r) for r in readings]
    body = [kind, len(rows), step_s, newest_age_s]
    for i in range(len(rows[0])):
        body.append(_column([row[i] for row in rows]))
    return cbor.dumps(body)


def _column(values):
    first = values[0]
    if all(v == first and type(v) is type(first) for v in values):
        return first
    out = []
    last = None
    for v in values:
        if schema.is_int(v):
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
        if schema.is_int(item):
            last = item if last is None else last + item
            out.append(last)
        else:
            out.append(item)
    return out


def decode(body):
    values = schema.load(schema.BATCH, body)
    if not isinstance(values, list) or len(values) < 5:
        raise SchemaError("batch: body must be [kind, n, step_s, newest_age_s, columns...]")
    kind, n, step_s, newest_age_s = values[0], values[1], values[2], values[3]
    if kind not in schema.READINGS:
        raise SchemaError("batch: kind %r cannot be batched" % (kind,))
    if not (schema.is_int(n) and 1 <= n <= MAX_BATCH):
        raise SchemaError("batch: n must be 1..%d, got %r" % (MAX_BATCH, n))
    _check_times(step_s, newest_age_s)
    specs = schema.fields(kind)
    columns = values[4:]
    if len(columns) != len(specs):
        raise SchemaError("batch: %s needs %d columns, got %d"
                          % (schema.kind_name(kind), len(specs), len(columns)))
    cols = [_uncolumn(c, n, "%s.%s" % (schema.kind_name(kind), s[0]))
            for c, s in zip(columns, specs)]
    readings = []
    for i in range(n):
        reading = {s[0]: schema.from_raw(kind, s, col[i]) for s, col in zip(specs, cols)}
        reading["age_s"] = newest_age_s + (n - 1 - i) * step_s
        readings.append(reading)
    return {"kind": schema.kind_name(kind), "step_s": step_s, "readings": readings}
