"""Fill level on a virtual board: the distance error in mm against the scenario's ground
truth, over a simulated day with echoes off the walls and the container's air between 8 and
28 °C, for both rangefinders; the JSN-SR04T with its speed of sound from the SHT4x
thermometer and without it (20 °C assumed); the thermometer's error against the air."""
import random
import shutil
import statistics
import tempfile
from pathlib import Path

from hil_tests.virtual.board import VirtualBoard, deploy
from hil_tests.virtual.kits import fill as fill_kit
from hil_tests.virtual.kits import node_config
from hil_tests.virtual.models.a02yyuw import A02YYUW
from hil_tests.virtual.models.battery import BatteryADC
from hil_tests.virtual.receiver import Receiver

KEY = bytes(range(16))
ADDR = 0x0F0001
INTERVAL = 1800


def scenario(seed):
    """The top of the contents (distance from the sensor, mm) over time: the bin fills at a
    rate that changes by the hour and is emptied at 08:00 and 17:00."""
    rng = random.Random(seed)
    rates = [rng.uniform(0.5, 6.0) for _ in range(48)]  # % per hour
    depth, full = fill_kit.SETTINGS["depth_mm"], fill_kit.SETTINGS["blind_mm"]

    def level_pct(vt):
        hours = vt / 3.6e9
        start = 0 if hours < 8 else 8 if hours < 17 else 17
        return min(100.0, sum(rates[h] for h in range(start, int(hours))) +
                   rates[int(hours)] * (hours - int(hours)))

    def distance(vt):
        return depth - level_pct(vt) / 100 * (depth - full)
    return distance


def air_c(vt):
    """The air in the container: 8 °C at night, 28 °C in the afternoon."""
    import math
    return 18 - 10 * math.cos((vt / 3.6e9 - 3) / 24 * 2 * math.pi)


def run_chip(image, chip, days, thermometer=True):
    """(distance errors mm, temperature errors °C) of each reading against the truth."""
    work = Path(tempfile.mkdtemp(prefix="cityedge-fill-"))
    rx = Receiver({ADDR: KEY})
    distance = scenario(1)
    flash = work / "flash"
    shutil.copytree(image, flash)
    if chip == "a02yyuw":
        cfg = node_config("fill", addr=ADDR, gateway_port=rx.port, interval_s=INTERVAL,
                          sensors={"chip": "a02yyuw", "uart": 2, "tx": 17, "rx": 16})
        # datasheet accuracy ±(1 + 0.3 % of the distance) cm: about 5 mm at 1 m
        models = [BatteryADC(), A02YYUW("uart2", distance_mm=distance, jitter_mm=5)]
        models[1].fault = "noise"
    else:
        sensors = dict(fill_kit.SENSORS)
        if not thermometer:
            del sensors["thermometer"]
        cfg = node_config("fill", addr=ADDR, gateway_port=rx.port, interval_s=INTERVAL,
                          sensors=sensors)
        models = fill_kit.models(distance_mm=distance, temperature_c=air_c,
                                 thermometer=thermometer)
        models[1].jitter_mm = 5  # datasheet accuracy about ±1 cm
        models[1].fault = "noise"
    deploy(flash, packages=(), config=cfg, key=KEY)
    board = VirtualBoard(flash, name=chip, log_dir=work, models=models)
    try:
        cycles = int(days * 86400 // INTERVAL)
        runs = board.run(cycles)
        errors, t_errors = [], []
        for run, (_, _, kind, msg) in zip(runs, [a for a in rx.accepted if a[2] == "fill"]):
            # the reading was taken early in its run: compare with the truth at that time
            errors.append(abs(msg["distance_mm"] - distance(run.vt_start + 200000)))
            if msg["temperature_c"] is not None:
                t_errors.append(abs(msg["temperature_c"] - air_c(run.vt_start)))
        return errors, t_errors
    finally:
        board.close()
        rx.close()
        shutil.rmtree(work, ignore_errors=True)


def run(days):
    image = deploy(Path(tempfile.mkdtemp(prefix="cityedge-image-")))
    rows = []
    for chip, thermometer, target in (
            ("jsnsr04t", True, "< 20 mm (speed of sound from the SHT4x)"),
            ("jsnsr04t", False, "< 30 mm (no thermometer: 20 °C assumed)"),
            ("a02yyuw", False, "< 20 mm (the module corrects its own)")):
        errors, t_errors = run_chip(image, chip, days, thermometer)
        label = chip + (" + sht4x" if thermometer else "")
        rows.append(("%s distance error, mean / max (%d readings, wall echoes on)"
                     % (label, len(errors)),
                     "%.1f / %.1f mm" % (statistics.mean(errors), max(errors)), target))
        if t_errors:
            rows.append(("%s air temperature error, mean / max" % label,
                         "%.2f / %.2f °C" % (statistics.mean(t_errors), max(t_errors)),
                         "< 0.3 °C (SHT4x: ±0.2 °C typ.)"))
    return rows
