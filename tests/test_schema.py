"""protocol/schema.py: every kind round-trips within its resolution, out-of-range values
are refused naming the field, bodies fit the airtime budget, batches and commands."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import batch, cbor, frame, schema
from protocol.errors import SchemaError

EXAMPLES = {
    schema.FILL: {"level_pct": 85.5, "distance_mm": 812, "temperature_c": 31.4,
                  "hours_to_full": 40, "fault": 0},
    schema.PARKING: {"occupied": True, "minutes": 27, "field_ut": 48.7, "overstay": False,
                     "fault": 0},
    schema.CO2: {"co2_ppm": 1234, "temperature_c": 22.7, "humidity_pct": 45.5, "fault": 0},
    schema.LUMINAIRE: {"power_w": 78.5, "energy_wh": 152340, "level_pct": 70, "burn_h": 9870,
                       "fault": 0},
    schema.STATUS: {"battery_mv": 3612, "reset_cause": 4, "faults": 0, "fw_version": 100,
                    "uptime_s": 864000, "queue_depth": 0, "dropped": 0, "awake_ms": 850,
                    "cycle_uah": 24.37},
    schema.EVENT: {"event": 1, "value": -3},
    schema.ACK: {"command_id": 7, "result": 0},
}


def field_value(spec):
    name, scale, lo, hi, _ = spec
    if scale is None:
        return st.booleans() | st.none()
    if scale == 1:
        return st.integers(lo, hi) | st.none()
    return st.floats(lo, hi) | st.none()


def readings(kind, **limits):
    specs = schema.fields(kind)
    fields = {}
    for spec in specs:
        name = spec[0]
        if name in limits:
            fields[name] = st.integers(spec[2], limits[name]) | st.none()
        else:
            fields[name] = field_value(spec)
    return st.fixed_dictionaries(fields)


def assert_within_resolution(kind, reading, decoded):
    for name, scale, *_ in schema.fields(kind):
        sent, got = reading[name], decoded[name]
        if sent is None or scale is None:
            assert got == sent, name
        else:
            assert abs(got - sent) <= 0.5 / scale + 1e-9, name


@pytest.mark.parametrize("kind", sorted(EXAMPLES), ids=schema.kind_name)
def test_example_reading_round_trips_on_both_runtimes(runtime, kind):
    body = runtime.call("protocol.schema.encode", kind, EXAMPLES[kind])
    assert body == schema.encode(kind, EXAMPLES[kind])
    assert runtime.call("protocol.schema.decode", kind, body) == EXAMPLES[kind]


@pytest.mark.parametrize("kind", schema.kinds(), ids=schema.kind_name)
@settings(max_examples=150)
@given(data=st.data())
def test_every_field_round_trips_within_its_resolution(kind, data):
    reading = data.draw(readings(kind))
    assert_within_resolution(kind, reading, schema.decode(kind, schema.encode(kind, reading)))


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(data=st.data())
def test_both_runtimes_encode_every_reading_identically(micropython, data):
    kind = data.draw(st.sampled_from(schema.kinds()))
    reading = data.draw(readings(kind))
    body = schema.encode(kind, reading)
    assert micropython.call("protocol.schema.encode", kind, reading) == body
    assert micropython.call("protocol.schema.decode", kind, body) == schema.decode(kind, body)


@pytest.mark.parametrize("kind", schema.READINGS, ids=schema.kind_name)
@settings(max_examples=300)
@given(data=st.data())
def test_any_reading_fits_one_sf12_airtime_step(kind, data):
    # 25 bytes on air, MIC, header and counter included, for any value in range. The
    # luminaire stays within it while burn hours < 65,536 (15 years dusk to dawn) and at
    # most one luminaire fault bit is set (PROTOCOL.md section 11).
    limits = {"fault": 23, "burn_h": 65535} if kind == schema.LUMINAIRE else {}
    reading = data.draw(readings(kind, **limits))
    keys = frame.Keys(bytes(16))
    sealed = frame.seal(keys, kind, frame.MAX_ADDR, frame.MAX_FCNT, schema.encode(kind, reading))
    assert len(sealed) <= 25


@pytest.mark.parametrize("kind, field, value", [
    (schema.FILL, "level_pct", 100.5), (schema.FILL, "temperature_c", -40.1),
    (schema.CO2, "co2_ppm", 40001), (schema.LUMINAIRE, "level_pct", -1),
    (schema.LUMINAIRE, "energy_wh", 2**32), (schema.PARKING, "field_ut", 6553.6)])
def test_out_of_range_value_is_refused_naming_the_field(runtime, kind, field, value):
    reading = dict(EXAMPLES[kind], **{field: value})
    with pytest.raises(SchemaError, match="%s.%s" % (schema.kind_name(kind), field)):
        runtime.call("protocol.schema.encode", kind, reading)


@pytest.mark.parametrize("field, value, message", [
    ("occupied", 1, "not a boolean"), ("minutes", "27", "not a number"),
    ("minutes", True, "not a number"), ("field_ut", float("nan"), "NaN"),
    ("colour", 3, "unknown field")])
def test_wrong_type_or_unknown_field_is_refused(runtime, field, value, message):
    reading = dict(EXAMPLES[schema.PARKING], **{field: value})
    with pytest.raises(SchemaError, match=message):
        runtime.call("protocol.schema.encode", schema.PARKING, reading)


def test_missing_field_travels_as_null_meaning_not_available():
    reading = {"level_pct": 40, "distance_mm": None, "fault": schema.FAULT_BUS}
    decoded = schema.decode(schema.FILL, schema.encode(schema.FILL, reading))
    assert decoded == {"level_pct": 40, "distance_mm": None, "temperature_c": None,
                       "hours_to_full": None, "fault": 1}


@pytest.mark.parametrize("body, message", [
    ([1, 2, 3], "array of 5"), ([171, 812, 314, 40, 1.5], "not an integer"),
    ([201, 812, 314, 40, 0], "level_pct: 100.5 on air is out of range"),
    ({"level_pct": 1}, "array of 5"), ([171, 812, True, 40, 0], "not an integer")])
def test_malformed_body_is_refused_naming_the_field(runtime, body, message):
    with pytest.raises(SchemaError, match=message):
        runtime.call("protocol.schema.decode", schema.FILL, cbor.dumps(body))


def test_body_that_is_not_cbor_is_a_schema_error(runtime):
    with pytest.raises(SchemaError, match="not valid CBOR"):
        runtime.call("protocol.schema.decode", schema.CO2, b"\x85\x01")


def test_unknown_kind_is_refused(runtime):
    with pytest.raises(SchemaError, match="unknown message kind 17"):
        runtime.call("protocol.schema.decode", 17, b"\x80")


# ---------------------------------------------------------------- batches

def hourly(kind, n=6):
    base = EXAMPLES[kind]
    out = []
    for i in range(n):
        r = dict(base)
        if kind == schema.FILL:
            r.update(level_pct=60 + i * 0.5, distance_mm=1190 - 6 * i, temperature_c=18.2 + 0.3 * i,
                     hours_to_full=52 - i)
        elif kind == schema.PARKING:
            r.update(occupied=i >= 3, minutes=(i - 3) * 10 if i >= 3 else 40 + i * 10,
                     field_ut=2.1 + (i >= 3) * 45.3 + 0.2 * i)
        elif kind == schema.CO2:
            r.update(co2_ppm=640 + 45 * i, temperature_c=21.0 + 0.2 * i, humidity_pct=41 + i)
        else:
            r.update(power_w=78.5 if i < 4 else 52.3, energy_wh=152340 + 13 * i,
                     level_pct=70 if i < 4 else 50, burn_h=9870 + i // 3)
        out.append(r)
    return out


@pytest.mark.parametrize("kind", schema.READINGS, ids=schema.kind_name)
def test_six_readings_in_one_batch_cost_under_ten_bytes_each(runtime, kind):
    body = runtime.call("protocol.batch.encode", kind, hourly(kind), 600, 30)
    assert (frame.OVERHEAD + len(body)) / 6 < 10


@pytest.mark.parametrize("kind", schema.READINGS, ids=schema.kind_name)
def test_batch_round_trips_with_each_readings_age(runtime, kind):
    sent = hourly(kind)
    body = runtime.call("protocol.batch.encode", kind, sent, 600, 30)
    decoded = runtime.call("protocol.schema.decode", schema.BATCH, body)
    assert decoded["kind"] == schema.kind_name(kind) and decoded["step_s"] == 600
    assert [r.pop("age_s") for r in decoded["readings"]] == [3030, 2430, 1830, 1230, 630, 30]
    for reading, got in zip(sent, decoded["readings"]):
        assert_within_resolution(kind, reading, got)


@settings(max_examples=200)
@given(data=st.data(), n=st.integers(1, batch.MAX_BATCH))
def test_any_batch_round_trips(data, n):
    kind = data.draw(st.sampled_from(schema.READINGS))
    sent = [data.draw(readings(kind)) for _ in range(n)]
    decoded = batch.decode(batch.encode(kind, sent, 60))
    assert len(decoded["readings"]) == n
    for reading, got in zip(sent, decoded["readings"]):
        assert_within_resolution(kind, reading, got)


@pytest.mark.parametrize("body, message", [
    ([1, 2, 600, 0, 1, 2, 3, 4], "needs 5 columns"),
    ([5, 1, 600, 0, 1, 2, 3, 4, 5], "cannot be batched"),
    ([1, 0, 600, 0, 1, 2, 3, 4, 5], "n must be"),
    ([1, 2, 0, 0, 1, 2, 3, 4, 5], "step_s"),
    ([1, 2, 600, 0, [1, 2, 3], 2, 3, 4, 5], "column has 3 items for 2 readings"),
    ([1, 2, 600, 0, [100, 150], 2, 3, 4, 5], "level_pct: 125.0 on air is out of range")])
def test_malformed_batch_is_refused(runtime, body, message):
    with pytest.raises(SchemaError, match=message):
        runtime.call("protocol.schema.decode", schema.BATCH, cbor.dumps(body))


# ---------------------------------------------------------------- commands

@pytest.mark.parametrize("command, arg", [
    ("set_interval", 600), ("set_thresholds", [1000, 800]), ("dim_override", [30, 120]),
    ("set_profile", [[0, 100], [240, 50], [480, 70]]), ("recalibrate", None),
    ("forced_recalibration", 420), ("reboot", None), ("set_status_every", 12)])
def test_every_command_round_trips(runtime, command, arg):
    body = runtime.call("protocol.command.encode", 513, command, arg)
    assert runtime.call("protocol.schema.decode", schema.COMMAND, body) == {
        "command_id": 513, "command": command, "arg": arg}


@pytest.mark.parametrize("command, arg", [
    ("set_interval", 5), ("dim_override", [30]), ("set_profile", [[240, 50], [0, 100]]),
    ("set_profile", [[0, 101]]), ("forced_recalibration", 100), ("reboot", 1)])
def test_command_with_a_bad_argument_is_refused(runtime, command, arg):
    with pytest.raises(SchemaError, match="command.%s: bad argument" % command):
        runtime.call("protocol.command.encode", 1, command, arg)


def test_unknown_command_on_air_is_refused(runtime):
    with pytest.raises(SchemaError, match="unknown command 99"):
        runtime.call("protocol.schema.decode", schema.COMMAND, cbor.dumps([1, 99, None]))
