"""The node runtime on a virtual board, under real MicroPython with an ESP32's heap: the cycle,
counters that are never reused, the flash queue, faults, the watchdog, downlinks."""
import random
import threading
import time

from hil_tests.virtual.board import DEEPSLEEP_RESET, PWRON_RESET, WDT_RESET
from protocol import schema
from tests.firmware.conftest import ADDR, fill_config


def kinds(receiver, kind):
    return [(fcnt, msg) for addr, fcnt, name, msg in receiver.accepted if name == kind]


def test_a_cycle_sends_a_reading_and_a_status_then_sleeps_for_the_interval(make_board, receiver):
    board = make_board()
    run = board.run(1)[0]
    assert run.end == "deepsleep" and run.reset_cause == PWRON_RESET
    assert 590000 < run.sleep_ms <= 600000
    (fcnt, reading), = kinds(receiver, "fill")
    assert reading["distance_mm"] in range(690, 711) and reading["fault"] == 0
    assert abs(reading["level_pct"] - (1200 - 700) * 100 / (1200 - 250)) < 1.5
    (_, status), = kinds(receiver, "status")
    assert status["reset_cause"] == PWRON_RESET and status["battery_mv"] == 3700
    assert status["fw_version"] == 100 and status["queue_depth"] >= 1


def test_status_every_n_cycles_carries_uptime_and_the_energy_account(make_board, receiver):
    board = make_board()
    board.run(7)
    statuses = [msg for _, msg in kinds(receiver, "status")]
    assert len(statuses) == 2  # after the power-on, then after 6 cycles
    later = statuses[1]
    assert later["reset_cause"] == PWRON_RESET  # the last reset that was not a deep sleep
    assert 5 * 600 <= later["uptime_s"] <= 6 * 600 + 5
    assert later["awake_ms"] > 0 and later["cycle_uah"] > 0
    assert board.runs[-1].reset_cause == DEEPSLEEP_RESET


def test_counters_strictly_increase_across_hundreds_of_sleeps_and_random_power_cuts(
        make_board, receiver):
    board = make_board(config=fill_config(receiver, status_every=50))
    rng = random.Random(7)
    for i in range(300):
        draw = rng.random()
        if draw < 0.1:  # a watchdog reset at a random instant of the cycle (RTC kept)
            board.watchdog_at(board.vt + rng.randrange(0, 400000))
        elif draw < 0.2:  # a brown-out at a random instant of the cycle (RTC lost)
            board.brownout_at(board.vt + rng.randrange(0, 400000))
        board.start()
        if 0.2 <= draw < 0.3:  # the power cut at a random real instant, whatever runs
            threading.Timer(rng.uniform(0, 0.03), board.kill).start()
        board.wait()
    assert receiver.reused == [], "a counter was used for two different frames"
    counters = [fcnt for _, fcnt, _, _ in receiver.accepted]
    assert counters == sorted(set(counters)), "counters must arrive strictly increasing"
    ends = [r.end for r in board.runs]
    assert ends.count("killed") > 10 and ends.count("watchdog") > 10
    assert ends.count("brownout") > 10
    # a cycle that reached its deep sleep had queued its reading: none may be missing
    board.run(1)  # one more cycle flushes what the last interrupted ones queued
    assert len(kinds(receiver, "fill")) >= ends.count("deepsleep")
    # every power cut restarts from the flash reservation: a jump, never a step back
    assert max(counters) >= 250 + 256


def test_frames_queued_during_a_wifi_outage_all_arrive_after_it_in_order(make_board, receiver):
    board = make_board()
    board.run(2)
    board.wifi_up = False
    board.run(10)
    assert len(kinds(receiver, "fill")) == 2
    board.wifi_up = True
    board.run(1)
    fills = kinds(receiver, "fill")
    assert len(fills) == 13
    assert [f for f, _ in fills] == sorted(f for f, _ in fills)
    statuses = [msg for _, msg in kinds(receiver, "status")]
    assert any(s["faults"] & schema.FAULT_LINK for s in statuses)


def test_frames_stay_queued_while_the_gateway_does_not_answer(make_board, receiver):
    board = make_board()
    receiver.up = False
    board.run(3)
    assert receiver.accepted == []
    receiver.up = True
    board.run(1)
    assert len(kinds(receiver, "fill")) == 4


def test_a_full_queue_drops_the_oldest_and_reports_how_many(make_board, receiver):
    board = make_board(config=fill_config(receiver, queue_max=5, status_every=1))
    board.wifi_up = False
    board.run(6)
    board.wifi_up = True
    board.run(1)
    statuses = [msg for _, msg in kinds(receiver, "status")]
    assert statuses[-1]["dropped"] > 0 and statuses[-1]["faults"] & schema.FAULT_LINK
    assert len(receiver.accepted) <= 5 + 2


def test_a_broken_config_says_why_reports_it_and_sleeps_an_hour(make_board, receiver):
    board = make_board(config=fill_config(receiver, interval_s=3))
    run = board.run(1)[0]
    board.expect(r"config error: config.json: field 'interval_s' must be an integer 10..86400")
    assert run.end == "deepsleep" and run.sleep_ms == 3600 * 1000
    (_, status), = kinds(receiver, "status")
    assert status["faults"] & schema.FAULT_CONFIG


def test_a_config_that_is_not_json_never_boot_loops(make_board, receiver):
    board = make_board()
    (board.flash / "config.json").write_text("{ not json")
    runs = board.run(3)
    board.expect(r"config error: config.json: not valid JSON")
    assert all(r.end == "deepsleep" and r.sleep_ms == 3600 * 1000 for r in runs)


def test_a_missing_key_is_a_config_error(make_board, receiver):
    board = make_board()
    (board.flash / "device.key").unlink()
    run = board.run(1)[0]
    board.expect(r"config error: device.key: missing")
    assert run.sleep_ms == 3600 * 1000 and receiver.accepted == []


def test_a_dead_sensor_is_a_fault_code_and_the_node_keeps_reporting(make_board, receiver):
    board = make_board()
    sensor = board.model(("pulse", 18))
    sensor.fault = "dead"
    board.run(2)
    sensor.fault = None
    board.run(1)
    fills = [msg for _, msg in kinds(receiver, "fill")]
    assert [f["fault"] for f in fills] == [schema.FAULT_TIMEOUT, schema.FAULT_TIMEOUT, 0]
    assert fills[0]["level_pct"] is None and fills[2]["level_pct"] is not None
    assert all(r.end == "deepsleep" for r in board.runs)


def test_echoes_off_a_wall_are_rejected_as_outliers(make_board, receiver):
    board = make_board()
    board.model(("pulse", 18)).fault = "noise"
    board.run(3)
    for _, msg in kinds(receiver, "fill"):
        assert msg["distance_mm"] in range(690, 711)


def test_a_hung_cycle_is_reset_by_the_watchdog(make_board, receiver):
    board = make_board(config=fill_config(receiver, wdt_ms=1500))
    board.model(("pulse", 18)).fault = "stuck"  # the bus never finishes the transaction
    run = board.run(1, timeout=20)[0]
    assert run.end == "watchdog"
    board.model(("pulse", 18)).fault = None
    run = board.run(1)[0]
    assert run.reset_cause == WDT_RESET and run.end == "deepsleep"
    (_, status), = kinds(receiver, "status")
    assert status["reset_cause"] == WDT_RESET


def test_a_downlink_command_is_applied_and_acknowledged(make_board, receiver):
    board = make_board()
    board.run(1)
    receiver.queue_command(ADDR, 41, "set_interval", 300)
    run = board.run(1)[0]
    assert receiver.devices[ADDR].acks == {41: 0}
    assert 290000 < run.sleep_ms <= 300000
    run = board.run(1)[0]  # the new interval survives the sleep
    assert 290000 < run.sleep_ms <= 300000


def test_an_unknown_command_is_acknowledged_as_unknown(make_board, receiver):
    board = make_board()
    board.run(1)
    receiver.queue_command(ADDR, 42, "forced_recalibration", 420)  # a CO2 command, not fill's
    board.run(1)
    assert receiver.devices[ADDR].acks == {42: 1}


def test_ticks_wrap_like_an_esp32s_without_breaking_the_cycle(make_board, receiver):
    # ESP32 ticks_ms wraps at 2**30 ms (12.4 days): start the ticks 100 ms before the wrap.
    board = make_board(config=fill_config(receiver, status_every=1),
                       ticks_offset_us=((1 << 30) - 100) * 1000)
    runs = board.run(3)
    assert all(r.end == "deepsleep" and 590000 < r.sleep_ms <= 600000 for r in runs)
    statuses = [msg for _, msg in kinds(receiver, "status")]
    assert [0 < s["awake_ms"] < 5000 for s in statuses[1:]] == [True, True]
