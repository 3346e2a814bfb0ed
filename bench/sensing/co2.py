"""CO2 sensing over simulated school days on a virtual board (firmware as .mpy, unix port),
per chip: the decoded readings against the classroom's true CO2 at the instant of each
measurement, and the co2_high / co2_normal events against the true threshold crossings.

The classroom: 25 pupils in 180 m³, lessons with closed windows (0.8 air changes per hour),
breaks aired; CO2 rises past 1400 ppm in each lesson and falls below 1000 ppm in the breaks.
The SCD41 has a +15 ppm calibration error and +-10 ppm repeatability; the MH-Z19B a +30 ppm
error, +-8 ppm scatter and its 120 s (T90) response time."""
import math
import shutil
import statistics
import tempfile
from pathlib import Path

from hil_tests.virtual import kits
from hil_tests.virtual.board import VirtualBoard, deploy
from hil_tests.virtual.kits import co2 as co2_kit
from hil_tests.virtual.receiver import Receiver

KEY = bytes(range(16))
ADDR = 0x12AB34
MATCH_BEFORE_US = 2 * 60 * 1000000   # an event may lead the truth by the sensor's error
HIGH, LOW = 1400, 1000


def _day(image, chip, days):
    room = co2_kit.Classroom(days=int(math.ceil(days)) + 1)
    folder = Path(tempfile.mkdtemp(prefix="cityedge-co2-"))
    receiver = Receiver({ADDR: KEY})
    cfg = kits.node_config("co2", addr=ADDR, gateway_port=receiver.port)
    if chip == "mhz19b":
        cfg["sensors"] = dict(co2_kit.UART_SENSORS)
        models = co2_kit.models(chip=chip, co2_ppm=room.co2_ppm, calibration_error_ppm=30)
    else:
        models = co2_kit.models(co2_ppm=room.co2_ppm, temperature_c=room.temperature_c,
                                humidity_pct=room.humidity_pct, calibration_error_ppm=15)
    flash = folder / "flash"
    shutil.copytree(image, flash)
    deploy(flash, packages=(), config=cfg, key=KEY)
    board = VirtualBoard(flash, name="co2-" + chip, models=models, log_dir=folder)
    try:
        board.run(int(days * 86400 / co2_kit.INTERVAL), timeout=30)
        sensor = models[1]
        log = sensor.measurements if chip == "scd4x" else sensor.readings
        readings = [m for _, _, k, m in receiver.accepted if k == "co2"]
        events = [m for _, _, k, m in receiver.accepted if k == "event"]
        runs = list(board.runs)
    finally:
        board.close()
        receiver.close()
        shutil.rmtree(folder, ignore_errors=True)
    # the reading of a run is the last measurement the chip made in that run
    truth = []
    for i, run in enumerate(runs):
        end = runs[i + 1].vt_start if i + 1 < len(runs) else float("inf")
        inside = [m for m in log if run.vt_start <= m[0] < end]
        truth.append(inside[-1] if inside else None)
    errors = [r["co2_ppm"] - t[1] for r, t in zip(readings, truth)
              if t is not None and r["co2_ppm"] is not None]
    band = 40 if chip == "scd4x" else 50  # datasheets: +-(40 or 50 ppm + 5 % of reading)
    outside = sum(1 for r, t in zip(readings, truth) if t is not None and r["co2_ppm"] is not None
                  and abs(r["co2_ppm"] - t[1]) > band + 0.05 * t[1])
    # events: the run that sent each one, matched to the true crossings
    event_runs = [run for run in runs if any("events [(" in line for line in run.lines)]
    sent = []
    for run in event_runs:
        for line in run.lines:
            if "events [(" in line:
                codes = [int(c) for c in line.split("events [(")[1].split(",")[0:1]]
                sent.append((run.vt_start + 5000000, "high" if codes[0] == 7 else "normal"))
    crossings = room.crossings(HIGH, LOW, runs[0].vt_start, runs[-1].vt_start)
    latencies, false_alarms, used = [], 0, set()
    for t, kind in sent:
        match = next((i for i, (ct, ck) in enumerate(crossings) if i not in used and ck == kind
                      and ct - MATCH_BEFORE_US <= t <= ct + co2_kit.INTERVAL * 3e6), None)
        if match is None:
            false_alarms += 1
        else:
            used.add(match)
            latencies.append((t - crossings[match][0]) / 1e6)
    return {"readings": len(readings), "faults": sum(1 for r in readings if r["fault"]),
            "errors": errors, "outside": outside, "events": len(events),
            "crossings": len(crossings), "latencies": latencies,
            "false": false_alarms, "missed": len(crossings) - len(used)}


def run(days):
    image = deploy(Path(tempfile.mkdtemp(prefix="cityedge-image-")))
    rows = []
    for chip in ("scd4x", "mhz19b"):
        r = _day(image, chip, days)
        errs = sorted(abs(e) for e in r["errors"])
        p95 = errs[int(len(errs) * 0.95)] if errs else 0
        rows.append(("%s CO2 error vs truth (mean / p95 / max)" % chip,
                     "%+.1f / %d / %d ppm (%d readings, %d faults)"
                     % (statistics.mean(r["errors"]), p95, errs[-1], r["readings"], r["faults"]),
                     "within +-(40 ppm + 5 %)" if chip == "scd4x" else "within +-(50 ppm + 5 %)"))
        rows.append(("%s readings outside the datasheet accuracy band" % chip,
                     "%d of %d" % (r["outside"], len(r["errors"])), "0"))
        lat = r["latencies"]
        rows.append(("%s threshold event latency (median / max)" % chip,
                     "%.0f / %.0f s over %d events" % (statistics.median(lat), max(lat), len(lat))
                     if lat else "no events", "<= one interval (%d s)" % co2_kit.INTERVAL))
        rows.append(("%s false alarms / missed crossings" % chip,
                     "%d / %d of %d crossings" % (r["false"], r["missed"], r["crossings"]),
                     "0 / 0"))
    return rows
