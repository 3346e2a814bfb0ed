"""The luminaire kind: its algorithms as plain functions (CPython properties, MicroPython
cases), and the PZEM-004T, BH1750 and PIR against their device models on a virtual board
that stays awake (mains power): a night of dusk, dimming profile, motion and dawn; faults
of every chip; downlink commands."""
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil_tests.virtual.board import WDT_RESET
from hil_tests.virtual.kits import luminaire as kit
from hil_tests.virtual.kits import node_config
from hil_tests.virtual.models.bh1750 import crossing_times, daylight
from hil_tests.virtual.models.pzem004t import lamp_power_w
from protocol import schema
from tests.firmware.conftest import ADDR

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))
from apps import luminaire as lum  # noqa: E402

HOUR = 3600 * 10**6
MIN = 60 * 10**6


# ---------------------------------------------------------------- algorithms

@given(st.integers(-50, 200), st.integers(-50, 200))
def test_the_driver_level_is_off_or_between_its_minimum_and_full_and_keeps_order(a, b):
    la, lb = lum.effective_level(a), lum.effective_level(b)
    assert la == 0 or lum.MIN_LEVEL <= la <= 100
    if a <= b:
        assert la <= lb


@given(st.integers(0, 100), st.floats(1, 2000))
def test_the_expected_power_lies_inside_its_band(level, nominal):
    low, high = lum.power_band(level, nominal, 20)
    expected = lum.expected_power_w(nominal, level)
    assert low <= expected <= high and expected <= nominal
    if level:
        assert expected >= nominal * lum.IDLE


@given(st.lists(st.floats(0, 200), min_size=1, max_size=60), st.booleans())
def test_light_between_the_thresholds_never_switches(luxes, dark):
    pending = None
    for i, lux in enumerate(luxes):
        lux = 20 + lux * 30 / 200  # within on_lux 20 .. off_lux 50
        state, pending, changed = lum.daylight_step(dark, pending, lux, i * 5000, 20, 50, 120000)
        assert state == dark and not changed


@given(st.integers(1, 40), st.integers(0, 3), st.booleans())
def test_a_crossing_switches_only_after_lasting_the_debounce(samples, blips, dark):
    # `samples` samples 5 s apart past the threshold, after `blips` short excursions
    lux_past = 100 if dark else 5
    pending, now, flips = None, 0, []
    for _ in range(blips):  # a headlight: one sample, then back
        for lux in (lux_past, 35):
            dark2, pending, changed = lum.daylight_step(dark, pending, lux, now, 20, 50, 120000)
            assert not changed and dark2 == dark
            now += 5000
    start = now
    for _ in range(samples):
        state, pending, changed = lum.daylight_step(dark, pending, lux_past, now, 20, 50, 120000)
        if changed:
            flips.append(now - start)
            break
        now += 5000
    assert flips == ([120000] if (samples - 1) * 5000 >= 120000 else [])


@given(st.lists(st.tuples(st.integers(1, 60), st.integers(0, 100)), min_size=1, max_size=8),
       st.integers(0, 1500))
def test_the_profile_level_is_the_last_step_begun(steps, minutes):
    profile, at = [], 0
    for gap, level in steps:
        profile.append([at, level])
        at += gap
    level = lum.profile_level(profile, minutes)
    begun = [s for s in profile if s[0] <= minutes]
    assert level == (begun[-1][1] if begun else profile[0][1])


def test_the_default_profile_dims_after_4_h_and_rises_an_hour_before_a_12_h_dawn():
    levels = [lum.profile_level(lum.DEFAULT_PROFILE, m) for m in (0, 239, 240, 659, 660, 720)]
    assert levels == [100, 100, 50, 50, 70, 70]


@given(st.lists(st.floats(0, 80), min_size=1, max_size=40), st.integers(10, 100))
def test_lamp_failure_is_reported_once_and_recovery_once(powers, level):
    expected = lum.expected_power_w(60, level)
    failed, low, events = False, 0, []
    for p in powers:
        failed, low, event = lum.lamp_health(failed, low, level, p, expected)
        if event:
            events.append(event)
    # events alternate failed, ok, failed... starting with failed
    assert events == [9, 10] * (len(events) // 2) + [9] * (len(events) % 2)
    assert failed == (events[-1:] == [9])
    if all(p < lum.DEAD_FRACTION * expected for p in powers):
        assert failed == (len(powers) >= lum.FAIL_SAMPLES)


def test_an_unlit_lamp_is_never_judged():
    assert lum.lamp_health(False, 2, 0, 0.0, 0.0) == (False, 2, None)
    assert lum.lamp_health(True, 5, 50, None, 30.0) == (True, 5, None)


@given(st.lists(st.booleans(), min_size=1, max_size=50))
def test_power_band_events_only_on_leaving_the_band_after_n_samples(outside_samples):
    outside, count, streak, previous = False, 0, 0, None
    for out in outside_samples:
        streak = streak + 1 if out == previous else 1
        previous = out
        power = 100.0 if out else 60.0
        before = outside
        outside, count, event = lum.band_step(outside, count, power, 50.0, 70.0)
        assert event == (11 if outside and not before else None)
        if outside != before:  # flips only after BAND_SAMPLES samples in a row on the other side
            assert outside == out and streak >= lum.BAND_SAMPLES


def test_set_thresholds_band_replaces_the_nominal_one():
    assert lum.power_band(100, 60, 20) == pytest.approx((48.0, 72.0))
    assert lum.power_band(100, 60, 20, 40, 50) == pytest.approx((40.0, 50.0))
    low, high = lum.power_band(50, 60, 20, 40, 0)
    assert low == pytest.approx(40 * 0.525) and high > 1000


@pytest.mark.parametrize("call, args", [
    ("effective_level", (5,)), ("effective_level", (73,)), ("expected_power_w", (60, 50)),
    ("power_band", (30, 60, 20)), ("power_band", (100, 60, 20, 40, 70)),
    ("daylight_step", (False, 0, 10.0, 125000, 20, 50, 120000)),
    ("daylight_step", (True, None, 80.0, 0, 20, 50, 120000)),
    ("profile_level", ([[0, 100], [240, 50], [660, 70]], 300)),
    ("lamp_health", (False, 2, 100, 0.3, 60.0)), ("band_step", (False, 2, 90.0, 48.0, 72.0))])
def test_the_algorithms_give_the_same_results_on_micropython(micropython_apps, call, args):
    result = micropython_apps.call("apps.luminaire." + call, *args)
    expected = getattr(lum, call)(*args)
    assert result == (list(expected) if isinstance(expected, tuple) else expected) or \
        result == expected or pytest.approx(result) == expected


# ---------------------------------------------------------------- on a virtual board

def luminaires(receiver):
    return [msg for _, _, kind, msg in receiver.accepted if kind == "luminaire"]


def events(receiver):
    return [(msg["event"], msg["value"]) for _, _, kind, msg in receiver.accepted
            if kind == "event"]


def lum_board(make_board, receiver, start_h, models=None, settings=None, heap="96K",
              **changes):
    cfg = node_config("luminaire", addr=ADDR, gateway_port=receiver.port,
                      settings=dict(kit.SETTINGS, **(settings or {})), **changes)
    return make_board(config=cfg, models=models or kit.models(), vt_start_us=int(start_h * HOUR),
                      heap=heap)


def until(board, receiver, predicate, timeout=20.0):
    """Run the (never sleeping) node until the receiver has seen what `predicate` wants."""
    if board._proc is None or board._proc.poll() is not None:
        board.start()
    receiver.wait_for(predicate, timeout)


def stop(board):
    board.kill()
    board.wait()


def duties(meter):
    return [(vt, round(duty * 100 / 65535)) for vt, duty in meter.pwm_log]


def test_a_night_switches_at_dusk_follows_the_profile_boosts_on_motion_and_ends_at_dawn(
        make_board, receiver):
    motion_at = 24 * HOUR + 5 * MIN  # someone walks by at 00:05, in the 50 % part
    models = kit.models(motions=[motion_at, motion_at + 2 * 10**6])
    meter, pir = models[0], models[2]
    board = lum_board(make_board, receiver, 18.5, models=models, settings={"tick_ms": 2000})
    try:
        until(board, receiver, lambda rx: any(r["level_pct"] for r in luminaires(rx))
              and luminaires(rx)[-1]["level_pct"] == 0, timeout=40)
    finally:
        stop(board)
    lux = daylight()
    (dusk, _), (dawn, _) = crossing_times(lux, 20, int(18.5 * HOUR), 36 * HOUR)[:1] + \
        crossing_times(lux, 50, 30 * HOUR, 36 * HOUR)[:1]
    steps = duties(meter)
    assert [level for _, level in steps] == [100, 50, 100, 50, 70, 0]
    on, dim, boost, unboost, predawn, off = [vt for vt, _ in steps]
    # on after the light stayed under 20 lx for the 120 s debounce (5 s samples, noise)
    assert 100 * 10**6 <= on - dusk <= 200 * 10**6
    assert 100 * 10**6 <= off - dawn <= 200 * 10**6
    assert abs(dim - on - 240 * MIN) <= 3 * 10**6          # 4 h after dusk
    assert abs(predawn - on - 660 * MIN) <= 3 * 10**6      # an hour before a 12 h night ends
    assert 0 <= boost - pir.rise_after(motion_at - 1) <= 2.5 * 10**6   # within a tick
    assert 60 * 10**6 <= unboost - boost <= 70 * 10**6     # the hold after the last motion
    assert (12, 50) in events(receiver)
    # energy: every register the meter gave is the truth rounded down; the node sends them
    assert all(0 <= truth - wh < 1 for _, wh, truth in meter.readings)
    sent = [r["energy_wh"] for r in luminaires(receiver)]
    assert sent == sorted(sent) and set(sent) <= {wh for _, wh, _ in meter.readings}
    night_h = (off - on) / HOUR
    assert luminaires(receiver)[-1]["burn_h"] == int(night_h)
    assert abs(meter.energy_wh - sent[-1]) <= 60 * 900 / 3600  # at most one interval's worth
    assert all(r["fault"] == 0 for r in luminaires(receiver))


@pytest.mark.parametrize("fault, bit", [
    ("silent", schema.FAULT_TIMEOUT), ("crc", schema.FAULT_CRC),
    ("exception", schema.FAULT_BUS), ("stuck_value", schema.FAULT_RANGE)])
def test_meter_faults_become_fault_codes_and_clear(make_board, receiver, fault, bit):
    board = lum_board(make_board, receiver, 21.0, interval_s=60)
    meter = board.model(("uart", "uart2"))
    try:
        until(board, receiver, lambda rx: len(luminaires(rx)) >= 2)
        meter.fault = fault
        until(board, receiver, lambda rx: luminaires(rx)[-1]["fault"] & bit)
        assert luminaires(receiver)[-1]["power_w"] is None
        meter.fault = None
        until(board, receiver, lambda rx: luminaires(rx)[-1]["fault"] == 0)
    finally:
        stop(board)
    assert luminaires(receiver)[-1]["power_w"] == pytest.approx(60, abs=1)
    assert luminaires(receiver)[-1]["level_pct"] == 100  # the lamp never stopped


def test_a_dead_lamp_is_reported_once_and_its_repair_too(make_board, receiver):
    board = lum_board(make_board, receiver, 21.0, interval_s=300)
    meter = board.model(("uart", "uart2"))
    try:
        until(board, receiver, lambda rx: len(luminaires(rx)) >= 1)
        meter.fault = "lamp_dead"
        until(board, receiver, lambda rx: (9, 100) in events(rx))
        assert luminaires(receiver)[-1]["fault"] == schema.FAULT_LAMP
        # an event is sent at once: within the 3 samples 10 s apart, not at the interval
        assert meter.requests and (meter.readings[-1][0] - meter.died_at) < 45 * 10**6
        meter.fault = None
        until(board, receiver, lambda rx: (10, 60) in [(e, v) for e, v in events(rx)])
        until(board, receiver, lambda rx: luminaires(rx)[-1]["fault"] == 0)
    finally:
        stop(board)
    assert [e for e, _ in events(receiver)].count(9) == 1


def test_power_out_of_its_band_is_a_fault_and_an_event(make_board, receiver):
    board = lum_board(make_board, receiver, 21.0, interval_s=300)
    meter = board.model(("uart", "uart2"))
    try:
        until(board, receiver, lambda rx: len(luminaires(rx)) >= 1)
        meter.full_w = 90.0  # a wrong driver, or a failing one drawing too much
        until(board, receiver, lambda rx: any(e == 11 for e, _ in events(rx)))
        assert luminaires(receiver)[-1]["fault"] == schema.FAULT_POWER_BAND
        meter.full_w = 60.0
        until(board, receiver, lambda rx: luminaires(rx)[-1]["fault"] == 0)
    finally:
        stop(board)
    assert [v for e, v in events(receiver) if e == 11][0] in range(86, 94)


def test_a_failed_light_sensor_is_aux_and_the_lamp_keeps_its_state(make_board, receiver):
    board = lum_board(make_board, receiver, 21.0, interval_s=60)
    light = board.model(("i2c", "i2c0", 0x23))
    try:
        until(board, receiver, lambda rx: len(luminaires(rx)) >= 1)
        light.fault = "nack"
        until(board, receiver, lambda rx: luminaires(rx)[-1]["fault"] == schema.FAULT_AUX)
        assert luminaires(receiver)[-1]["level_pct"] == 100
        light.fault = None
        until(board, receiver, lambda rx: luminaires(rx)[-1]["fault"] == 0)
    finally:
        stop(board)


def test_a_hung_light_sensor_is_reset_by_the_watchdog_and_the_node_comes_back(
        make_board, receiver):
    board = lum_board(make_board, receiver, 21.0, interval_s=60, wdt_ms=2000)
    light = board.model(("i2c", "i2c0", 0x23))
    try:
        until(board, receiver, lambda rx: len(luminaires(rx)) >= 1)
        light.fault = "stuck"
        run = board.wait(timeout=20)
        assert run.end == "watchdog"
        light.fault = None
        until(board, receiver, lambda rx: any(
            m.get("reset_cause") == WDT_RESET for _, _, k, m in rx.accepted if k == "status"))
        until(board, receiver, lambda rx: luminaires(rx)[-1]["level_pct"] == 100)
    finally:
        stop(board)


def test_dim_override_profile_and_thresholds_are_applied_and_acknowledged(make_board, receiver):
    board = lum_board(make_board, receiver, 12.0, interval_s=60)
    meter = board.model(("uart", "uart2"))
    device = receiver.devices[ADDR]
    try:
        until(board, receiver, lambda rx: len(luminaires(rx)) >= 1)
        assert luminaires(receiver)[-1]["level_pct"] == 0  # daytime
        receiver.queue_command(ADDR, 41, "dim_override", [30, 3])
        receiver.queue_command(ADDR, 42, "set_thresholds", [30, 80, 40])   # min > max
        receiver.queue_command(ADDR, 43, "dim_override", [150, 3])
        until(board, receiver, lambda rx: 43 in device.acks)
        until(board, receiver, lambda rx: luminaires(rx)[-1]["level_pct"] == 30)
        # the override ends after 3 minutes: back to the daytime level
        until(board, receiver, lambda rx: luminaires(rx)[-1]["level_pct"] == 0)
        receiver.queue_command(ADDR, 44, "set_profile", [[0, 80], [60, 40]])
        receiver.queue_command(ADDR, 45, "set_thresholds", [10, 40, 50])
        until(board, receiver, lambda rx: 45 in device.acks)
    finally:
        stop(board)
    assert device.acks == {41: 0, 42: 2, 43: 2, 44: 0, 45: 0}
    assert [level for _, level in duties(meter)] == [30, 0]
    overrides = (board.flash / "overrides.json").read_text()
    assert "[[0, 80], [60, 40]]" in overrides and "[10, 40, 50]" in overrides
