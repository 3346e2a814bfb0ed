"""The luminaire on a virtual board through simulated days (noon to noon): dusk and dawn from
the BH1750's daylight curve, the default dimming profile, people walking by at night, and
the lamp's LEDs failing open at 03:00 of the last night. Measured against the models' ground
truth: energy (the meter's register and the node's last reading against the integral of the
lamp's power), lamp-failure detection latency, motion-boost latency, and the wall time a
simulated day takes on this host (1 s ticks)."""
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from hil_tests.virtual import kits
from hil_tests.virtual.board import VirtualBoard, deploy
from hil_tests.virtual.receiver import Receiver

KEY = bytes(range(16))
ADDR = 0x12AB34
HOUR = 3600 * 10**6


def run(days):
    days = max(1, int(round(days)))
    tmp = Path(tempfile.mkdtemp(prefix="cityedge-bench-lum-"))
    rx = Receiver({ADDR: KEY})
    try:
        start = 12 * HOUR
        end = start + days * 24 * HOUR
        rng = random.Random(12)
        motions = []
        for night in range(days):  # a walker every 20..60 min between 21:00 and 05:00
            t = start + night * 24 * HOUR + 9 * HOUR
            while t < start + night * 24 * HOUR + 17 * HOUR:
                t += rng.randint(20, 60) * 60 * 10**6
                motions.append(t)
        fail_at = start + (days - 1) * 24 * HOUR + 15 * HOUR  # 03:00 of the last night
        models = kits.kit("luminaire").models(motions=motions, fail_at_us=fail_at)
        meter, pir = models[0], models[2]
        image = deploy(tmp / "image")
        flash = tmp / "flash"
        shutil.copytree(image, flash)
        cfg = kits.node_config("luminaire", addr=ADDR, gateway_port=rx.port)
        deploy(flash, packages=(), config=cfg, key=KEY)
        # 112K: a whole day at 96K can still run out of heap (fragmentation; see the tests)
        board = VirtualBoard(flash, name="luminaire", log_dir=tmp, models=models,
                             vt_start_us=start, heap="112K")
        wall = time.monotonic()
        board.start()
        while (meter._vt or 0) < end and board._proc.poll() is None:
            time.sleep(0.05)
        wall = time.monotonic() - wall
        board.kill()
        board.wait()
        board.close()
        readings = [m for _, _, k, m in rx.accepted if k == "luminaire"]
        events = [(m["event"], m["value"]) for _, _, k, m in rx.accepted if k == "event"]
        vt, register, truth = meter.readings[-1]
        last = readings[-1]["energy_wh"] if readings else None
        # the node's last reading against the truth when the meter gave that register value
        truth_at_last = max((t for _, wh, t in meter.readings if wh == last), default=None)
        failed = [v for v, wh, t in meter.readings if v >= fail_at]
        detect = failed[2] - fail_at if len(failed) >= 3 else None  # the third low sample
        boosts = []
        on = [(v, d) for v, d in meter.pwm_log]
        for v, d in on:
            if d == 65535:
                rise = pir.rise_after(v - 3 * 10**6)
                if rise is not None and rise <= v:
                    boosts.append(v - rise)
        return [
            ("energy: meter register vs ground truth",
             "%.2f Wh (%.3f %%) of %.0f Wh" % (truth - register, 100 * (truth - register) / truth,
                                              truth), "< 1 Wh (1 Wh register)"),
            ("energy: node's last reading vs truth at it",
             "%.2f Wh" % (truth_at_last - last) if last is not None else "no reading",
             "< 1 Wh"),
            ("energy: last reading vs truth at the end",
             "%.1f Wh (%.2f %%)" % (truth - (last or 0), 100 * (truth - (last or 0)) / truth),
             "<= one interval's energy"),
            ("lamp failure: detection latency",
             "%.0f s" % (detect / 1e6) if detect is not None else "not detected",
             "<= 3 samples x 10 s + settle"),
            ("lamp failure: event lamp_failed sent", str((9, 100) in events or
                                                         any(e == 9 for e, _ in events)), "True"),
            ("motion boost latency (median / max, %d boosts)" % len(boosts),
             "%.2f / %.2f s" % (statistics.median(boosts) / 1e6, max(boosts) / 1e6)
             if boosts else "no boost", "<= 1 tick (1 s)"),
            ("motion events sent", str(sum(1 for e, _ in events if e == 12)), "one per boost"),
            ("wall time per simulated day", "%.1f s" % (wall / days), "(host)"),
        ]
    finally:
        rx.close()
        shutil.rmtree(tmp, ignore_errors=True)
