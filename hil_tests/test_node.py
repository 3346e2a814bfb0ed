"""What every board of every kind must do before it goes onto a lamp post or a bin. Each test
starts from a board just reset (the `bench` fixture) and runs the same on a bench board and
on a virtual one; what only the virtual board can do by itself is marked."""
import time

import pytest

from hil_tests.checks import MAIN_VALUE, SENSOR_FAULTS, fault_words, implausible
from hil_tests.dut import PWRON_RESET, WDT_RESET

BATTERY_KINDS = ("fill", "parking", "co2")


def cycle_timeout(bench, extra=60):
    """How long to wait for the next cycle: moments on a virtual board, one interval on a
    bench board."""
    return 20 if bench.board.virtual else bench.interval_s() + extra


def new_records(gateway, device, kind, seen):
    return [r for r in gateway.records(device, kind=kind) if r["key"] not in seen]


def test_the_firmware_version_and_config_read_back(bench):
    version = bench.spec.info["firmware"]
    assert version == bench.version, (
        "%s runs firmware %d but this bench qualifies firmware %d: flash it again with "
        "tools/flash" % (bench.spec.name, version, bench.version))
    cfg = bench.read_identity()
    assert cfg.get("kind") == bench.kind, (
        "%s is provisioned as a %r node but sits on the bench as %r: check the label and "
        "the --kind/bench file" % (bench.spec.name, cfg.get("kind"), bench.kind))
    bench.record("interval_s", cfg.get("interval_s"))
    inventory = bench.board.inventory
    if inventory is None:
        return
    entry = inventory.get(cfg.get("device_id"))
    assert entry is not None, ("%s says it is %r, which is not in the inventory: provision "
                               "it with tools/flash" % (bench.spec.name, cfg.get("device_id")))
    assert (entry["kind"], entry["addr"]) == (cfg["kind"], cfg["addr"]), (
        "%s: config.json says kind %s, address %s; the inventory says %s, %s: provision it "
        "again with tools/flash --reprovision" % (bench.spec.name, cfg["kind"], cfg["addr"],
                                                  entry["kind"], entry["addr"]))


def test_the_sensor_answers_with_a_plausible_reading(bench):
    reading, _ = bench.dut.expect_reading()
    assert reading is not None, "the node took no reading after power-on"
    fault = reading.get("fault") or 0
    assert not fault, ("the %s sensor reports fault %d (%s): check its cable and connector"
                       % (bench.kind, fault, fault_words(fault)))
    wrong = implausible(bench.kind, reading)
    assert not wrong, ("the %s sensor answers, but with implausible values: %s"
                       % (bench.kind, ", ".join(wrong)))
    bench.record(MAIN_VALUE[bench.kind], reading[MAIN_VALUE[bench.kind]])


def test_the_reading_reaches_the_gateway_and_decodes(bench):
    gateway = bench.need_gateway()
    device = bench.device_id()
    seen = {r["key"] for r in gateway.records(device, kind=bench.kind)}
    bench.reset()  # from here on every reading is new to the gateway (a parking node only
    #                sends one after a start or a change)
    reading, _ = bench.dut.expect_reading()
    assert reading is not None, "the node sent no reading after power-on"
    bench.dut.expect_cycle_done(why="the node did not finish sending")
    arrived = gateway.wait_for(
        "a new %s reading from %s (check the Wi-Fi, the gateway address in the board's "
        "config and that the gateway knows its key)" % (bench.kind, device),
        lambda: new_records(gateway, device, bench.kind, seen), timeout=15)
    main = MAIN_VALUE[bench.kind]
    # The gateway's name and SI unit for the value, and the value's step on air.
    on_air, scale, step = {"co2_ppm": ("co2_ppm", 1, 1), "power_w": ("power_w", 1, 0.1),
                           "field_ut": ("field_deviation_t", 1e-6, 0.1e-6),
                           "distance_mm": ("distance_m", 1e-3, 1e-3)}[main]
    # The board may have sent more cycles since: one of the new records is this reading.
    mine = [r for r in arrived if r["values"][on_air] is not None and
            r["values"][on_air] == pytest.approx(reading[main] * scale, rel=0.001, abs=step)]
    assert mine, ("the board measured %s=%r, the gateway decoded %s" % (
        main, reading[main], [r["values"][on_air] for r in arrived]))
    values = mine[-1]["values"]
    assert values["faults"] == [], "the gateway decoded faults %s" % values["faults"]
    bench.record("gateway fcnt", mine[-1]["fcnt"])


@pytest.mark.kinds(*BATTERY_KINDS)
def test_the_node_deep_sleeps_and_wakes_on_time(bench):
    awake_ms, _, sleep_ms = bench.dut.expect_cycle_done()
    interval_ms = bench.interval_s() * 1000
    assert abs(awake_ms + sleep_ms - interval_ms) <= 1000, (
        "the node sleeps %d ms after %d ms awake, but its interval is %d ms"
        % (sleep_ms, awake_ms, interval_ms))
    slept_s = bench.board.time_wake(bench.dut, sleep_ms, awake_ms)
    # The ESP32's RTC slow clock (an RC oscillator by default) drifts by a few per cent;
    # a board that wakes far off has a wrong sleep, or a wrong wake source.
    assert abs(slept_s - sleep_ms / 1000) <= 0.05 * sleep_ms / 1000 + 3, (
        "the node was asked to sleep %.1f s but woke after %.1f s"
        % (sleep_ms / 1000, slept_s))
    bench.record("sleep asked (s)", round(sleep_ms / 1000, 1))
    bench.record("sleep measured (s)", round(slept_s, 1))
    bench.record("awake (ms)", awake_ms)


def test_a_reset_mid_cycle_reuses_no_frame_counter(bench):
    gateway = bench.need_gateway()
    device = bench.device_id()
    replays = gateway.rejected("replay")
    newest = max((r["fcnt"] for r in gateway.records(device, limit=1)), default=-1)
    for _ in range(2 if bench.board.virtual else 1):
        bench.dut.expect_reading(timeout=cycle_timeout(bench))
        bench.board.reset(bench.dut.serial)   # between the reading and its uplink
        bench.dut.expect_boot(PWRON_RESET, why="the board did not start after a reset")

    def fresh():
        return [r for r in gateway.records(device, limit=5) if r["fcnt"] > newest]
    try:
        gateway.wait_for("a frame from %s after the resets" % device, fresh,
                         timeout=cycle_timeout(bench))
        arrived = True
    except AssertionError:
        arrived = False
    reused = gateway.rejected("replay") - replays
    assert reused == 0, (
        "after a reset mid-cycle the gateway rejected %d frame(s) from %s as replays: the "
        "board reused frame counters, so the gateway drops its data. The firmware does not "
        "keep its counter across resets (fcnt.res in flash): do not ship this firmware"
        % (reused, device))
    assert arrived, ("no frame from %s reached the gateway after a reset mid-cycle"
                     % device)
    bench.record("fcnt after resets", max(r["fcnt"] for r in fresh()))


@pytest.mark.stimulus
def test_frames_queued_in_a_link_outage_are_delivered_after_it(bench):
    gateway = bench.need_gateway()
    device = bench.device_id()
    seen = {r["key"] for r in gateway.records(device, limit=1000)}
    board = bench.board
    down = getattr(board, "board", None)
    try:
        bench.stimulus("link down", "switch off the bench's Wi-Fi access point (or unplug "
                       "the gateway's network cable)",
                       lambda: setattr(down, "wifi_up", False))
        queued = 0
        for _ in range(8):
            queued = bench.dut.expect_cycle_done(timeout=cycle_timeout(bench))[1]
            if queued >= 2:
                break
        assert queued >= 2, "the node never queued frames while its link was down"
        bench.stimulus("link up", "switch the access point back on",
                       lambda: setattr(down, "wifi_up", True))
        for _ in range(4):
            left = bench.dut.expect_cycle_done(timeout=cycle_timeout(bench))[1]
            if left == 0:
                break
        assert left == 0, ("%d frame(s) still queued on the node after the link came back"
                           % left)
    finally:
        if down is not None:
            down.wifi_up = True
    delivered = gateway.wait_for(
        "the %d frame(s) queued in the outage reaching the gateway" % queued,
        lambda: (lambda new: new if len(new) >= queued else None)(
            new_records(gateway, device, None, seen)), timeout=10)
    bench.record("frames queued in outage", queued)
    bench.record("frames delivered after", len(delivered))


def test_a_downlink_is_applied_and_acknowledged(bench):
    gateway = bench.need_gateway()
    device = bench.device_id()
    original = bench.interval_s()
    new = 60 if original != 60 else 120
    # Queued while the node sleeps, as in the field: it goes down with the next uplink.
    bench.dut.expect_cycle_done(timeout=cycle_timeout(bench))
    queued = gateway.queue_command(device, "set_interval", new)
    try:
        result = bench.dut.expect(
            r"node: command %d set_interval %d -> (\d+)" % (queued["command_id"], new),
            timeout=cycle_timeout(bench),
            why="the command queued at the gateway never reached the node").group(1)
        assert result == "0", "the node refused set_interval %d (result %s)" % (new, result)
        awake_ms, _, sleep_ms = bench.dut.expect_cycle_done()
        assert sleep_ms <= new * 1000, ("set_interval %d was acknowledged but the node still "
                                        "sleeps %d ms" % (new, sleep_ms))
        (cmd,) = gateway.wait_for(
            "the acknowledgement of command %d reaching the gateway" % queued["command_id"],
            lambda: [c for c in gateway.commands(device)
                     if c["command_id"] == queued["command_id"] and c["state"] == "acked"],
            timeout=10)
        assert cmd["result"] == "ok", cmd
    finally:
        # Put the board back as it was provisioned.
        back = gateway.queue_command(device, "set_interval", original)
        bench.dut.expect(r"node: command %d set_interval %d -> 0"
                         % (back["command_id"], original),
                         timeout=cycle_timeout(bench, extra=new + 60),
                         why="the interval could not be set back to %d s" % original)
    bench.record("downlink applied", "set_interval %d, then %d" % (new, original))


@pytest.mark.virtual_only
def test_the_watchdog_resets_a_hung_cycle_and_the_node_recovers(bench):
    if not bench.board.virtual:
        pytest.skip("a hung bus cannot be made on a bench board without rewiring it: the "
                    "virtual board covers this with the same firmware")
    gateway = bench.need_gateway()
    device = bench.device_id()
    sensor = bench.board.sensor()
    with bench.board.short_watchdog() as wdt_ms:
        sensor.fault = "stuck"   # the bus transaction never ends: the cycle hangs
        start = time.monotonic()
        try:
            bench.dut.expect_boot(WDT_RESET, timeout=wdt_ms / 1000 + 20,
                                  why="the node hung on a sensor that never answers and its "
                                      "watchdog did not reset it")
        finally:
            sensor.fault = None
    bench.record("watchdog reset after (s)", round(time.monotonic() - start, 1))
    status = gateway.wait_for(
        "a status frame saying the node was reset by its watchdog",
        lambda: [r for r in gateway.records(device, kind="status", limit=5)
                 if r["values"]["reset_cause"] == "watchdog"], timeout=cycle_timeout(bench))
    assert status


@pytest.mark.stimulus
def test_a_sensor_fault_is_reported_as_a_fault_code(bench):
    board = bench.board
    sensor = board.sensor() if board.virtual else None
    try:
        bench.stimulus("sensor fault", "unplug the %s sensor's cable from the board"
                       % bench.kind, lambda: setattr(sensor, "fault", board.silencing_fault))
        for _ in range(4):
            reading, _ = bench.dut.expect_reading(timeout=cycle_timeout(bench))
            if reading and reading.get("fault"):
                break
        fault = (reading or {}).get("fault") or 0
        assert fault & SENSOR_FAULTS, ("with its sensor silent the node reported fault %d "
                                       "(%s), not a sensor fault" % (fault, fault_words(fault)))
        bench.record("fault code (sensor silent)", "%d: %s" % (fault, fault_words(fault)))
        bench.stimulus("sensor back", "plug the %s sensor back in" % bench.kind,
                       lambda: setattr(sensor, "fault", None))
        for _ in range(4):
            reading, _ = bench.dut.expect_reading(timeout=cycle_timeout(bench))
            if reading and not reading.get("fault"):
                break
        assert reading and not reading.get("fault"), (
            "the fault stayed after the sensor came back: %r" % (reading,))
    finally:
        if sensor is not None:
            sensor.fault = None
