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
