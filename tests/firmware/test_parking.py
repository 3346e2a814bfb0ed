"""The parking kind: its algorithms as plain functions (CPython properties, MicroPython
cases), and the QMC5883L driver and the app against the device model on a virtual board:
arrivals and departures, neighbours and passing traffic, heartbeats, overstay, faults,
downlinks, power loss, and a busy stretch of a day against its ground truth."""
import math
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil_tests.virtual.board import WDT_RESET
from hil_tests.virtual.kits import node_config
from hil_tests.virtual.kits import parking as kit
from protocol import schema
from tests.firmware.conftest import ADDR

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))
from apps import parking  # noqa: E402

OCCUPIED, FREE, OVERSTAY, RECALIBRATED = 4, 5, 6, 13
S = 10**6  # virtual µs per second
BUS = ("i2c", "i2c0", 0x0D)

field = st.tuples(*[st.integers(-300000, 300000)] * 3)


def readings(receiver):
    return [msg for _, _, kind, msg in receiver.accepted if kind == "parking"]


def events(receiver, code=None):
    return [(msg["event"], msg["value"]) for _, _, kind, msg in receiver.accepted
            if kind == "event" and (code is None or msg["event"] == code)]


def board_for(make_board, receiver, settings=None, **world):
    cfg = node_config("parking", addr=ADDR, gateway_port=receiver.port,
                      settings=dict(kit.SETTINGS, **(settings or {})))
    return make_board(config=cfg, models=kit.models(**world))


def after(t_s, vector):
    """A car (µT vector) over the sensor from virtual second t_s on."""
    return lambda vt: vector if vt >= t_s * S else None


def between(t0_s, t1_s, vector):
    return lambda vt: vector if t0_s * S <= vt < t1_s * S else None


# ---------------------------------------------------------------- algorithms

@given(field, field)
def test_deviation_is_the_exact_integer_euclidean_distance(a, b):
    d = parking.deviation_nt(a, b)
    n = sum((x - y) ** 2 for x, y in zip(a, b))
    assert d * d <= n < (d + 1) * (d + 1)
    assert d == parking.deviation_nt(b, a) and parking.deviation_nt(a, a) == 0


@given(st.booleans(), st.integers(0, 200000), st.integers(1, 100000), st.integers(1, 100000))
def test_hysteresis_keeps_the_state_between_the_thresholds(occupied, d, low, gap):
    high = low + gap
    state = parking.classify(occupied, d, high, low)
    if d >= high:
        assert state is True
    elif d <= low:
        assert state is False
    else:
        assert state == occupied


@given(st.booleans(), st.lists(st.integers(0, 40000), max_size=5))
def test_a_change_needs_three_samples_that_point_to_it(occupied, ds):
    new = parking.debounced(occupied, ds)
    agree = [parking.classify(occupied, d) != occupied for d in ds]
    assert new == (not occupied if sum(agree) >= 3 else occupied)


def test_one_sample_spoiled_by_passing_traffic_does_not_put_the_change_off():
    # free -> occupied, the second of four samples taken while a car drove past overhead
    assert parking.debounced(False, [15000, 3000, 14800, 15100]) is True
    # traffic alone over a free space: two samples at most
    assert parking.debounced(False, [9000, 9500, 300, 200, 250]) is False


@given(field, field)
def test_drift_tracking_moves_toward_the_field_and_never_past_it(b, a):
    moved = parking.track(list(b), a)
    for i in range(3):
        lo, hi = sorted((b[i], a[i]))
        assert lo <= moved[i] <= hi
    assert parking.deviation_nt(moved, a) <= parking.deviation_nt(b, a)
    for _ in range(2000):
        moved = parking.track(moved, a)
    assert list(moved) == list(a)


@given(field, st.lists(st.tuples(*[st.integers(-600, 600)] * 3), min_size=1, max_size=8))
def test_a_calm_calibration_gives_the_mean_and_a_passing_car_none(centre, noise):
    samples = [tuple(c + n for c, n in zip(centre, e)) for e in noise]
    baseline = parking.baseline_of(samples)
    assert baseline is not None and parking.deviation_nt(baseline, centre) <= 1100
    car = tuple(c + 9000 for c in centre)
    assert parking.baseline_of(samples + [car]) is None


@pytest.mark.parametrize("call, args", [
    ("deviation_nt", ([19000, 1500, -44000], [21000, -300, -20000])),
    ("deviation_nt", ([300000, -300000, 300000], [-300000, 300000, -300000])),
    ("classify", (True, 5200, 8000, 5000)), ("debounced", (False, [9000, 8100, 12000])),
    ("debounced", (False, [9000, 7000])), ("track", ([19000, 1500, -44000], [19500, 1400, -43000])),
    ("baseline_of", ([[100, 200, 300], [140, 180, 330], [90, 210, 280]],)),
    ("baseline_of", ([[100, 200, 300], [9100, 200, 300]],))])
def test_the_algorithms_give_the_same_results_on_micropython(micropython_apps, call, args):
    expected = getattr(parking, call)(*args)
    got = micropython_apps.call("apps.parking." + call, *args)
    assert got == (list(expected) if isinstance(expected, tuple) else expected)


# ---------------------------------------------------------------- the device model

def test_model_follows_the_datasheet_registers_and_conversion_timing():
    from hil_tests.virtual.models.qmc5883l import QMC5883L
    chip = QMC5883L(noise_ut=0.0)
    assert chip.transfer(b"\x0d", 1, 0)[0] == b"\xff"            # chip id
    assert chip.transfer(b"\x06", 1, 0)[0] == b"\x00"            # standby: no data
    chip.transfer(b"\x09\x0d", 0, 1000)                         # continuous, 200 Hz, 2 G
    assert chip.transfer(b"\x06", 1, 4000)[0] == b"\x00"         # before the first 5 ms
    assert chip.transfer(b"\x06", 1, 7000)[0] == b"\x01"         # DRDY
    data = chip.transfer(b"\x00", 6, 7100)[0]
    x, y, z = (int.from_bytes(data[i:i + 2], "little", signed=True) for i in range(0, 6, 2))
    assert (x, y, z) == tuple(round(b * 120) for b in chip.earth_ut)  # 12000 LSB/G
    assert chip.transfer(b"\x06", 1, 7200)[0] == b"\x00"         # cleared by the data read
    assert chip.transfer(b"\x06", 1, 30000)[0] == b"\x05"        # skipped data: DOR
    chip.transfer(b"\x0a\x40", 0, 30000)                          # pointer roll-over
    assert len(chip.transfer(b"\x00", 8, 30000)[0]) == 8
    chip.fault = "out_of_range"
    assert chip.transfer(b"\x06", 1, 40000)[0][0] & 0x02           # OVL, saturated
    chip.fault = None
    chip.transfer(b"\x0a\x80", 0, 41000)                          # soft reset: standby
    assert chip.regs[0x09] == 0 and chip.transfer(b"\x06", 1, 90000)[0] == b"\x00"


# ---------------------------------------------------------------- on a virtual board

def test_install_calibrates_then_arrival_and_departure_are_reported_at_the_next_wake(
        make_board, receiver):
    car = (6.0, -4.0, 30.0)
    board = board_for(make_board, receiver, car=between(100, 400, car))
    board.run(16)  # 0..450 s, a wake every 30 s
    first, *rest = readings(receiver)
    assert first["occupied"] is False and first["fault"] == 0 and first["field_ut"] < 1.0
    (_, baseline), = events(receiver, RECALIBRATED)
    assert abs(baseline - 10 * math.dist(kit.models()[1].earth_ut, (0, 0, 0))) < 10
    assert [e[0] for e in events(receiver) if e[0] != RECALIBRATED] == [OCCUPIED, FREE]
    (_, value), = events(receiver, OCCUPIED)
    assert abs(value - 10 * math.dist(car, (0, 0, 0))) < 10  # µT x 10
    occupied = [r for r in rest if r["occupied"]]
    assert len(occupied) == 1 and abs(occupied[0]["field_ut"] - math.dist(car, (0, 0, 0))) < 1
    assert events(receiver, FREE) == [(FREE, 5)]  # seen at the wakes of 120 s and 420 s
    assert rest[-1]["occupied"] is False and rest[-1]["minutes"] == 0
    assert len(readings(receiver)) == 3  # nothing between the changes: no uplink


def test_a_heartbeat_reading_comes_every_heartbeat_minutes_and_counts_the_minutes(
        make_board, receiver):
    board = board_for(make_board, receiver, settings={"heartbeat_min": 2},
                      car=after(40, (0.0, 12.0, -20.0)))
    board.run(13)  # 0..360 s
    rs = readings(receiver)
    assert [r["occupied"] for r in rs] == [False, True, True, True]
    assert [r["minutes"] for r in rs] == [0, 0, 2, 4]


def test_neighbour_cars_and_passing_traffic_raise_no_event(make_board, receiver):
    def nearby(vt):  # a neighbour parks at 60 s; traffic passes a second long every 7 s
        v = (1.5, -2.0, 3.0) if vt >= 60 * S else (0.0, 0.0, 0.0)
        if (vt // S) % 7 == 0:
            v = (v[0] + 8.0, v[1], v[2] - 9.0)
        return v
    board = board_for(make_board, receiver, neighbour=nearby)
    board.run(20)
    assert [e for e in events(receiver) if e[0] != RECALIBRATED] == []
    assert all(r["occupied"] is False for r in readings(receiver))


def test_traffic_over_the_sensor_at_the_first_wake_after_a_departure_does_not_delay_it(
        make_board, receiver):
    traffic = []  # (from, to) virtual µs: a car driving over the sensor

    def nearby(vt):
        return (6.0, -5.0, 9.0) if any(a <= vt < b for a, b in traffic) else None
    board = board_for(make_board, receiver, car=between(40, 100, (0.0, 15.0, 20.0)),
                      neighbour=nearby)
    while board.vt < 100 * S:
        board.run(1)
    assert [e[0] for e in events(receiver) if e[0] != RECALIBRATED] == [OCCUPIED]
    traffic.append((board.vt, board.vt + S))  # over the sensor as the next wake begins
    board.run(1)
    assert [e[0] for e in events(receiver) if e[0] != RECALIBRATED] == [OCCUPIED, FREE]


def test_overstay_is_raised_once_per_stay(make_board, receiver):
    board = board_for(make_board, receiver, settings={"time_limit_min": 2},
                      car=between(40, 260, (0.0, 15.0, 15.0)))
    board.run(12)
    assert events(receiver, OVERSTAY) == [(OVERSTAY, 2)]
    flagged = [r for r in readings(receiver) if r["overstay"]]
    assert len(flagged) == 1 and flagged[0]["occupied"] and flagged[0]["minutes"] == 2
    assert readings(receiver)[-1]["overstay"] is False


@pytest.mark.parametrize("fault, bit", [
    ("nack", schema.FAULT_BUS), ("not_ready", schema.FAULT_TIMEOUT),
    ("out_of_range", schema.FAULT_RANGE), ("stuck_value", schema.FAULT_RANGE)])
def test_sensor_faults_become_fault_codes_and_clear(make_board, receiver, fault, bit):
    board = board_for(make_board, receiver, car=after(100, (5.0, 5.0, 20.0)))
    board.run(2)
    board.model(BUS).fault = fault
    board.run(3)
    board.model(BUS).fault = None
    board.run(3)
    rs = readings(receiver)
    assert [r["fault"] for r in rs] == [0, bit, 0]  # once when it appears, once cleared
    assert rs[1]["occupied"] is None and rs[1]["field_ut"] is None
    assert rs[2]["occupied"] is True  # the car that came meanwhile
    assert [e[0] for e in events(receiver) if e[0] != RECALIBRATED] == [OCCUPIED]
    assert all(r.end == "deepsleep" for r in board.runs)


def test_a_noisy_sensor_still_tells_cars_without_false_events(make_board, receiver):
    board = board_for(make_board, receiver, car=between(200, 500, (0.0, 20.0, 25.0)))
    board.run(1)  # calibrated while the sensor was still quiet
    board.model(BUS).fault = "noise"  # 2.5 µT per axis
    board.run(19)
    assert [e[0] for e in events(receiver) if e[0] != RECALIBRATED] == [OCCUPIED, FREE]


def test_a_hung_bus_is_reset_by_the_watchdog_and_the_node_recovers(make_board, receiver):
    # (calibration takes four seconds without feeding the watchdog: no shorter timeout)
    cfg = node_config("parking", addr=ADDR, gateway_port=receiver.port, wdt_ms=5000)
    board = make_board(config=cfg, models=kit.models())
    board.run(1)
    board.model(BUS).fault = "stuck"
    run = board.run(1, timeout=20)[0]
    assert run.end == "watchdog"
    board.model(BUS).fault = None
    run = board.run(1)[0]
    assert run.reset_cause == WDT_RESET and run.end == "deepsleep"
    assert len(events(receiver, RECALIBRATED)) == 1  # the baseline survived the reset


def test_thresholds_by_downlink_are_applied_and_bad_ones_refused(make_board, receiver):
    board = board_for(make_board, receiver, car=after(300, (0.0, 0.0, 6.5)))  # a weak car
    board.run(1)
    # A parking node listens for downlinks after an uplink only: with no change to report,
    # the commands wait for the next status (every 6 wakes here).
    receiver.queue_command(ADDR, 11, "set_thresholds", [50, 80])  # free above occupied
    receiver.queue_command(ADDR, 12, "set_thresholds", [60])
    receiver.queue_command(ADDR, 13, "set_thresholds", [60, 30])
    board.run(12)
    assert receiver.devices[ADDR].acks == {11: 2, 12: 2, 13: 0}
    assert [e[0] for e in events(receiver) if e[0] != RECALIBRATED] == [OCCUPIED]


def test_recalibrate_is_acknowledged_then_reported_with_the_new_baseline(make_board, receiver):
    # Road works leave steel under the space at 60 s: a new empty-space field.
    board = board_for(make_board, receiver, neighbour=after(60, (0.0, 9.0, 9.0)))
    board.run(4)
    assert events(receiver, OCCUPIED)  # the steel looks like a car
    receiver.queue_command(ADDR, 21, "recalibrate")
    board.run(3)
    assert receiver.devices[ADDR].acks == {21: 0}
    cal = events(receiver, RECALIBRATED)
    assert len(cal) == 2
    new = [sum(p) for p in zip(kit.models()[1].earth_ut, (0.0, 9.0, 9.0))]
    assert abs(cal[1][1] - 10 * math.dist(new, (0, 0, 0))) < 10
    assert events(receiver, FREE) and readings(receiver)[-1]["occupied"] is False


def test_a_power_loss_keeps_the_baseline_and_the_parked_car(make_board, receiver):
    board = board_for(make_board, receiver, car=after(60, (10.0, 0.0, 20.0)))
    board.run(4)
    board.brownout_at(board.vt + 1000)
    board.run(2)
    assert len(events(receiver, RECALIBRATED)) == 1  # not calibrated over the car
    assert readings(receiver)[-1]["occupied"] is True


def test_a_busy_stretch_of_a_day_matches_the_ground_truth(make_board, receiver):
    day = kit.Day(seed=4, days=1.0, passing_per_hour=120)
    start = 10 * kit.HOUR  # shop hours
    cfg = node_config("parking", addr=ADDR, gateway_port=receiver.port,
                      settings=dict(kit.SETTINGS))
    board = make_board(config=cfg, models=day.models(), vt_start_us=start - 30 * S)
    woke = []
    for _ in range(150):  # 75 minutes
        seen = len(receiver.accepted)
        woke.append(board.vt)
        board.run(1)
        for _, _, kind, msg in receiver.accepted[seen:]:
            if kind == "event" and msg["event"] in (OCCUPIED, FREE):
                woke[-1] = (woke[-1], msg["event"] == OCCUPIED)
    reported = [w for w in woke if isinstance(w, tuple)]
    truth = [c for c in day.changes() if start - 30 * S < c[0] <= woke[-1]]
    assert len(truth) >= 3, "the scenario should be busy"
    assert [o for _, o in reported] == [o for _, o in truth]
    for (t_event, _), (t_change, _) in zip(reported, truth):
        # from the start of the drive on or off to the end of it plus one sample period
        assert -kit.RAMP_US // 2 <= t_event - t_change <= 30 * S + kit.RAMP_US // 2
