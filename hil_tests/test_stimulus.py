"""Each kind's sensor follows a change in its world. On a virtual board the device model
makes the change; on a bench the technician does (--technician), or the test is skipped
with the reason."""
import pytest

from hil_tests.checks import fault_words
from protocol import schema

pytestmark = pytest.mark.stimulus


def readings_until(bench, predicate, cycles=4):
    """The first reading within a few cycles that satisfies predicate, else the last one."""
    reading = None
    for _ in range(cycles):
        reading, events = bench.dut.expect_reading(
            timeout=20 if bench.board.virtual else bench.interval_s() + 60)
        if reading is not None and predicate(reading):
            break
    return reading


@pytest.mark.kinds("fill")
def test_a_filling_container_raises_the_level(bench):
    before = readings_until(bench, lambda r: r.get("level_pct") is not None)
    assert before and before.get("level_pct") is not None, "no level reading: %r" % (before,)
    jsn = bench.board.model("JSNSR04T") if bench.board.virtual else None
    bench.stimulus("fill up", "hold a flat board 35 cm in front of the rangefinder",
                   lambda: setattr(jsn, "distance_mm", 350))
    try:
        after = readings_until(bench, lambda r: (r.get("level_pct") or 0)
                               >= before["level_pct"] + 15)
    finally:
        if jsn is not None:
            jsn.distance_mm = 700
    assert after and (after.get("level_pct") or 0) >= before["level_pct"] + 15, (
        "the level stayed at %r %% (distance %r mm) with the contents 35 cm from the sensor"
        % ((after or {}).get("level_pct"), (after or {}).get("distance_mm")))
    bench.record("level empty / filled (%)", "%.0f / %.0f" % (before["level_pct"],
                                                               after["level_pct"]))


@pytest.mark.kinds("parking")
def test_a_car_arriving_is_reported_as_occupied(bench):
    before = readings_until(bench, lambda r: True)
    assert before is not None and before["occupied"] is False, (
        "the empty space reads %r: recalibrate the sensor with no car over it" % (before,))
    qmc = bench.board.model("QMC5883L") if bench.board.virtual else None
    # A parked car's steel adds tens of µT, mostly vertical, to Earth's field.
    bench.stimulus("car arrives", "park a car over the sensor (or lay the test steel plate "
                   "on it)", lambda: setattr(qmc, "car", (12.0, -8.0, 45.0)))
    try:
        after = readings_until(bench, lambda r: r.get("occupied") is True, cycles=6)
    finally:
        if qmc is not None:
            qmc.car = None
    assert after is not None and after.get("occupied") is True, (
        "a car over the sensor was not seen: %r" % (after,))
    bench.record("field with car (uT)", after.get("field_ut"))


@pytest.mark.kinds("co2")
def test_rising_co2_is_measured_and_raises_the_alarm(bench):
    before = readings_until(bench, lambda r: r.get("co2_ppm") is not None)
    assert before and before.get("co2_ppm") is not None, "no CO2 reading: %r" % (before,)
    scd = bench.board.model("SCD4x") if bench.board.virtual else None
    bench.stimulus("co2 rises", "breathe on the CO2 sensor through its vent for 10 s",
                   lambda: setattr(scd, "co2_ppm", 2200.0))
    alarm = []
    try:
        for _ in range(4):
            reading, events = bench.dut.expect_reading(
                timeout=30 if bench.board.virtual else bench.interval_s() + 60)
            alarm += [e for e in events if e]
            if reading and (reading.get("co2_ppm") or 0) >= 1400:
                break
    finally:
        if scd is not None:
            scd.co2_ppm = 420.0
    assert reading and (reading.get("co2_ppm") or 0) >= 1400, (
        "CO2 stayed at %r ppm after the rise" % ((reading or {}).get("co2_ppm"),))
    bench.record("co2 before / after (ppm)", "%s / %s" % (before["co2_ppm"], reading["co2_ppm"]))
    if bench.board.virtual:  # a breath may not last a whole single-shot measurement
        assert alarm, "CO2 at %s ppm raised no alarm event" % reading["co2_ppm"]


@pytest.mark.kinds("luminaire")
def test_a_failing_lamp_is_reported_as_a_lamp_fault(bench):
    board = bench.board
    meter = board.model("PZEM004T") if board.virtual else None
    light = board.model("BH1750") if board.virtual else None

    def fail():
        light.lux = 2.0       # night: the lamp is commanded on
        meter.fault = "lamp_dead"
    bench.stimulus("lamp fails", "at night (cover the light sensor), unplug the LED module "
                   "from its driver", fail)
    try:
        reading = readings_until(bench, lambda r: (r.get("fault") or 0) & schema.FAULT_LAMP,
                                 cycles=6)
    finally:
        if meter is not None:
            meter.fault = None
    fault = (reading or {}).get("fault") or 0
    assert fault & schema.FAULT_LAMP, ("a lamp drawing no power was not reported: fault %d "
                                       "(%s), reading %r" % (fault, fault_words(fault), reading))
    bench.record("lamp fault", "%d: %s" % (fault, fault_words(fault)))
