"""The fill-level kind: its algorithms as plain functions (CPython properties, MicroPython
cases), and the JSN-SR04T and A02YYUW drivers against their device models on a virtual
board, through faults and a day of filling and emptying."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil_tests.virtual.kits import fill as fill_kit
from hil_tests.virtual.kits import node_config
from hil_tests.virtual.models.a02yyuw import A02YYUW
from hil_tests.virtual.models.battery import BatteryADC
from protocol import schema
from tests.firmware.conftest import ADDR

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))
from apps import fill  # noqa: E402


def fills(receiver):
    return [msg for _, _, kind, msg in receiver.accepted if kind == "fill"]


def events(receiver):
    return [(msg["event"], msg["value"]) for _, _, kind, msg in receiver.accepted
            if kind == "event"]


# ---------------------------------------------------------------- algorithms

@given(st.integers(0, 5000), st.integers(0, 5000), st.integers(300, 3000), st.integers(0, 290))
def test_fill_level_is_bounded_and_falls_as_the_distance_grows(d1, d2, depth, full):
    a, b = fill.fill_pct(d1, depth, full), fill.fill_pct(d2, depth, full)
    assert 0 <= a <= 100 and 0 <= b <= 100
    if d1 <= d2:
        assert a >= b


@given(st.integers(300, 4000), st.lists(st.integers(-20, 20), min_size=3, max_size=5),
       st.lists(st.integers(200, 2000), max_size=2))
def test_echoes_off_walls_do_not_move_the_distance(true_mm, jitter, walls):
    pings = [true_mm + j for j in jitter] + [max(0, true_mm - w) for w in walls]
    if len(walls) * 2 >= len(pings):
        return
    assert abs(fill.robust_distance(pings) - true_mm) <= 20


def test_too_few_consistent_pings_give_no_distance():
    assert fill.robust_distance([500, 900, 1500]) is None
    assert fill.robust_distance([]) is None


@given(st.floats(0, 100), st.floats(0, 100), st.integers(1, 86400 * 7))
def test_hours_to_full_only_while_rising(level, previous, elapsed):
    hours = fill.hours_to_full(level, previous, elapsed)
    if level <= previous:
        assert hours is None
    else:
        assert 0 <= hours <= 65535


def test_speed_of_sound_at_20c_is_343_m_per_s():
    assert fill.speed_of_sound_mm_s(20) == 343420


@pytest.mark.parametrize("call, args", [
    ("fill_pct", (700, 1200, 250)), ("robust_distance", ([700, 702, 430, 698, 701],)),
    ("hours_to_full", (60.0, 50.0, 3600)), ("speed_of_sound_mm_s", (-10,))])
def test_the_algorithms_give_the_same_results_on_micropython(micropython_apps, call, args):
    assert micropython_apps.call("apps.fill." + call, *args) == getattr(fill, call)(*args)


# ---------------------------------------------------------------- on a virtual board

def a02_board(make_board, receiver, **world):
    cfg = node_config("fill", addr=ADDR, gateway_port=receiver.port,
                      sensors={"chip": "a02yyuw", "uart": 2, "tx": 17, "rx": 16})
    return make_board(config=cfg, models=[BatteryADC(), A02YYUW("uart2", **world)])


def test_a02yyuw_reading_matches_the_distance(make_board, receiver):
    board = a02_board(make_board, receiver, distance_mm=640)
    board.run(2)
    for reading in fills(receiver):
        assert reading["distance_mm"] == 640 and reading["fault"] == 0


@pytest.mark.parametrize("fault, bit", [("crc", schema.FAULT_CRC), ("dead", schema.FAULT_TIMEOUT)])
def test_a02yyuw_faults_become_fault_codes_and_clear(make_board, receiver, fault, bit):
    board = a02_board(make_board, receiver, distance_mm=640)
    board.model(("uart", "uart2")).fault = fault
    board.run(2)
    board.model(("uart", "uart2")).fault = None
    board.run(1)
    assert [r["fault"] for r in fills(receiver)] == [bit, bit, 0]
    assert fills(receiver)[-1]["distance_mm"] == 640


def test_a02yyuw_wall_echoes_are_filtered(make_board, receiver):
    board = a02_board(make_board, receiver, distance_mm=900)
    board.model(("uart", "uart2")).fault = "noise"
    board.run(3)
    assert all(r["distance_mm"] == 900 for r in fills(receiver))


def test_jsnsr04t_out_of_range_is_a_range_fault(make_board, receiver):
    board = make_board(models=fill_kit.models(distance_mm=6000))
    board.run(1)
    assert fills(receiver)[0]["fault"] == schema.FAULT_RANGE


def test_a_day_of_filling_and_emptying_matches_the_ground_truth(make_board, receiver):
    depth, full = fill_kit.SETTINGS["depth_mm"], fill_kit.SETTINGS["blind_mm"]
    hour = 3600 * 10**6

    def contents_top(vt):  # the bin fills 4 %/h, is emptied at 13:00, fills again
        t = vt / hour
        level = 4 * t if t < 13 else 4 * (t - 13)
        return depth - level / 100 * (depth - full)

    cfg = node_config("fill", addr=ADDR, gateway_port=receiver.port, interval_s=1800)
    board = make_board(config=cfg, models=fill_kit.models(distance_mm=contents_top))
    board.run(48)
    readings = fills(receiver)
    assert len(readings) == 48
    t = 0.0
    worst = 0
    for reading in readings:
        truth = 4 * t if t < 13 else 4 * (t - 13)
        worst = max(worst, abs(reading["level_pct"] - truth))
        t += 0.5
    assert worst < 2.0  # percent of the container's usable depth
    emptied = [e for e in events(receiver) if e[0] == fill.EVENT_EMPTIED]
    assert len(emptied) == 1 and 45 <= emptied[0][1] <= 53
    rising = [r["hours_to_full"] for r in readings[30:40]]
    assert all(h is not None and abs(h - (100 - r["level_pct"]) / 4) < 3
               for h, r in zip(rising, readings[30:40]))


def test_full_event_once_per_fill_and_threshold_by_downlink(make_board, receiver):
    cfg = node_config("fill", addr=ADDR, gateway_port=receiver.port)
    board = make_board(config=cfg, models=fill_kit.models(distance_mm=400))  # 84 % full
    board.run(1)
    receiver.queue_command(ADDR, 7, "set_thresholds", [80])
    board.run(3)
    assert receiver.devices[ADDR].acks == {7: 0}
    assert [e for e in events(receiver) if e[0] == fill.EVENT_FULL] == [(fill.EVENT_FULL, 84)]


# ---------------------------------------------------------------- thermometer and fire alarm

def feed(temps, step_s=600, fire_c10=700, rise_c10=100, span_s=900):
    """fire_step over a series of temperatures (°C) one interval apart: the events."""
    alarm, window, out = None, [], []
    for i, c in enumerate(temps):
        alarm, changed = fill.fire_step(alarm, int(round(c * 10)), i * step_s, window,
                                        fire_c10, rise_c10, span_s)
        if changed:
            out.append(("fire" if alarm is not None else "clear", i))
    return out


def test_fire_alarm_at_the_threshold_and_clear_only_after_cooling_by_the_hysteresis():
    temps = [55, 60, 64, 71, 69, 67, 72, 66, 64, 40]
    assert feed(temps) == [("fire", 3), ("clear", 8)]


def test_a_fast_rise_below_the_threshold_is_an_alarm_until_it_falls_back():
    # 12 K within one interval: a fire starting under the lid, long before 70 °C
    # it clears once back within half the rise (5 K) of where it started (20.5 °C)
    assert feed([20, 20.5, 32.5, 34, 31, 29, 26, 24]) == [("fire", 2), ("clear", 7)]


def test_a_sunny_afternoon_warming_slowly_is_no_alarm():
    assert feed([15 + 1.5 * i for i in range(24)]) == []  # 36 K in 4 h, up to 49.5 °C


@given(st.lists(st.floats(-30, 120), min_size=1, max_size=60))
def test_fire_events_alternate_and_an_alarm_means_hot_or_rising(temps):
    events = feed(temps)
    kinds = [k for k, _ in events]
    assert kinds == ["fire", "clear"] * (len(kinds) // 2) + ["fire"] * (len(kinds) % 2)
    for kind, i in events:
        c = int(round(temps[i] * 10))
        if kind == "fire":
            before = [int(round(t * 10)) for t in temps[max(0, i - 1):i]]
            assert c >= 700 or (before and c - min(before) >= 100)
        else:
            assert c < 650


def test_fire_step_gives_the_same_results_on_micropython(micropython_apps):
    for args in [(None, 725, 600, [0, 300], 700, 100, 900),
                 (None, 330, 1200, [0, 200, 600, 205], 700, 100, 900),
                 (300, 290, 1800, [1200, 330], 700, 100, 900)]:
        got = micropython_apps.call("apps.fill.fire_step", *args)
        assert list(got) == list(fill.fire_step(*args))


def sht(board):
    return board.model(("i2c", "i2c0", 0x44))


def test_the_reading_carries_the_containers_air_temperature(make_board, receiver):
    board = make_board(models=fill_kit.models(temperature_c=-7.5))
    board.run(2)
    for reading in fills(receiver):
        assert abs(reading["temperature_c"] + 7.5) <= 0.2 and reading["fault"] == 0


def test_the_speed_of_sound_follows_the_air_temperature(make_board, receiver):
    # 35 K above the 20 °C an uncorrected node assumes: 6 % of 700 mm, 42 mm
    board = make_board(models=fill_kit.models(distance_mm=700, temperature_c=55.0))
    board.run(1)
    assert abs(fills(receiver)[0]["distance_mm"] - 700) <= 2


def test_a_fill_node_without_thermometer_works_as_before(make_board, receiver):
    sensors = {k: v for k, v in fill_kit.SENSORS.items() if k != "thermometer"}
    cfg = node_config("fill", addr=ADDR, gateway_port=receiver.port, sensors=sensors)
    board = make_board(config=cfg, models=fill_kit.models(distance_mm=700, thermometer=False))
    board.run(1)
    reading, = fills(receiver)
    assert reading["temperature_c"] is None and reading["fault"] == 0
    assert abs(reading["distance_mm"] - 700) <= 2


@pytest.mark.parametrize("fault", ["nack", "crc", "out_of_range", "stuck_value"])
def test_thermometer_faults_are_the_aux_fault_and_clear(make_board, receiver, fault):
    board = make_board(models=fill_kit.models(distance_mm=700, temperature_c=12.0))
    board.run(1)
    sht(board).fault = fault
    board.run(fill.STUCK_READINGS if fault == "stuck_value" else 1)
    sht(board).fault = None
    board.run(1)
    got = fills(receiver)
    assert got[-2]["fault"] == schema.FAULT_AUX and got[-2]["temperature_c"] is None
    assert abs(got[-2]["distance_mm"] - 700) <= 2  # the level is still measured
    assert got[-1]["fault"] == 0 and abs(got[-1]["temperature_c"] - 12.0) <= 0.2
    assert all(r.end == "deepsleep" for r in board.runs)


def test_a_hung_thermometer_bus_is_reset_by_the_watchdog(make_board, receiver):
    board = make_board(config=node_config("fill", addr=ADDR, gateway_port=receiver.port,
                                          wdt_ms=1500))
    sht(board).fault = "stuck"
    assert board.run(1, timeout=20)[0].end == "watchdog"
    sht(board).fault = None
    assert board.run(1)[0].end == "deepsleep"
    assert fills(receiver)[-1]["fault"] == 0


def test_a_container_on_fire_raises_the_alarm_at_once_and_clears_after_it_cools(make_board,
                                                                               receiver):
    minute = 60 * 10**6

    def air(vt):  # 18 °C; at 30 min a fire heats it 4 K a minute up to 110 °C, put out at 90 min
        m = vt / minute
        if m < 30:
            return 18.0
        if m < 90:
            return min(110.0, 18.0 + 4 * (m - 30))
        return max(18.0, 110.0 - 3 * (m - 90))

    board = make_board(models=fill_kit.models(distance_mm=900, temperature_c=air))
    runs = board.run(24)  # 4 h at 10 min
    got = events(receiver)
    fires = [e for e in got if e[0] == fill.EVENT_FIRE]
    clears = [e for e in got if e[0] == fill.EVENT_FIRE_CLEAR]
    assert len(fires) == 1 and len(clears) == 1
    # the first wake after the fire started sees the fast rise (well below 70 °C)
    first_hot = next(i for i, r in enumerate(runs) if air(r.vt_start) > 30)
    readings = fills(receiver)
    assert readings[first_hot]["temperature_c"] < 70 and fires[0][1] == round(
        readings[first_hot]["temperature_c"])
    assert all(r["temperature_c"] <= 85 for r in readings)  # clamped to the field's range
    assert max(r["temperature_c"] for r in readings) == 85
    assert clears[0][1] < 65
    assert all(abs(r["distance_mm"] - 900) <= 3 for r in readings)
