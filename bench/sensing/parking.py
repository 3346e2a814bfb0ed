"""Parking occupancy on a virtual board: a node waking every 30 s over a simulated day of
arrivals and departures (kits/parking.Day: shop-and-go stays, a car in the next space,
traffic passing the sensor, the day's temperature drifting the sensor's offset), scored
as the city sees it, from the events that reach the receiver.

- correct state: at every wake, the state the received occupied/free events say against
  the ground truth at that instant;
- latency: from the moment the car is fully parked or fully gone (the end of its 4 s drive
  on or off) to the wake whose event reported it; an event during the drive counts as 0;
- missed changes and false events (an event with no true change behind it)."""
import shutil
import statistics
import tempfile
from pathlib import Path

from hil_tests.virtual.board import VirtualBoard, deploy
from hil_tests.virtual.kits import node_config
from hil_tests.virtual.kits import parking as kit
from hil_tests.virtual.receiver import Receiver

KEY = bytes(range(16))
ADDR = 0x0F0002
OCCUPIED, FREE = 4, 5


def simulate(days, seed=7, image=None):
    """Run the node over the scenario; returns (day, [(wake vt, [events])], uplinks)."""
    work = Path(tempfile.mkdtemp(prefix="cityedge-parking-"))
    rx = Receiver({ADDR: KEY})
    try:
        image = image or deploy(work / "image")
        flash = work / "flash"
        shutil.copytree(image, flash)
        # a status every hour, as a parking node would be provisioned (not every 3 minutes)
        cfg = node_config("parking", addr=ADDR, gateway_port=rx.port, status_every=120)
        deploy(flash, packages=(), config=cfg, key=KEY)
        day = kit.Day(seed=seed, days=days)
        board = VirtualBoard(flash, name="parking", log_dir=work, models=day.models(seed=seed))
        wakes = []
        while board.vt < day.end:
            seen = len(rx.accepted)
            vt = board.vt
            board.run(1, timeout=30)
            found = [msg["event"] for _, _, kind, msg in rx.accepted[seen:]
                     if kind == "event" and msg["event"] in (OCCUPIED, FREE)]
            wakes.append((vt, found))
        board.close()
        uplinks = {}
        for _, _, kind, _ in rx.accepted:
            uplinks[kind] = uplinks.get(kind, 0) + 1
        return day, wakes, uplinks
    finally:
        rx.close()
        shutil.rmtree(work, ignore_errors=True)


def score(day, wakes, interval_us=kit.INTERVAL * 10**6):
    state = False
    correct = 0
    reported = []  # (vt, occupied)
    for vt, found in wakes:
        for code in found:
            state = code == OCCUPIED
            reported.append((vt, state))
        correct += state == day.occupied(vt)
    truth = [c for c in day.changes() if c[0] <= wakes[-1][0]]
    latencies = []
    matched = set()
    for i, (t, occupied) in enumerate(truth):
        until = truth[i + 1][0] if i + 1 < len(truth) else float("inf")
        for j, (vt, state) in enumerate(reported):
            # from the start of the drive on or off: a car half over the sensor may be seen
            if j not in matched and t - kit.RAMP_US // 2 <= vt < until and state == occupied:
                matched.add(j)
                latencies.append(max(0, vt - (t + kit.RAMP_US // 2)))
                break
    within = sum(1 for x in latencies if x <= interval_us)
    return {"samples": len(wakes), "correct_pct": 100.0 * correct / len(wakes),
            "changes": len(truth), "detected": len(latencies),
            "false": len(reported) - len(matched), "latencies_s": [x / 1e6 for x in latencies],
            "within_pct": 100.0 * within / max(1, len(truth))}


def run(days):
    day, wakes, uplinks = simulate(days)
    s = score(day, wakes)
    lat = s["latencies_s"] or [0.0]
    return [
        ("correct state (%% of %d samples)" % s["samples"], "%.2f %%" % s["correct_pct"],
         "> 99 %"),
        ("changes detected", "%d of %d" % (s["detected"], s["changes"]), "all"),
        ("event latency median / max", "%.0f s / %.0f s" % (statistics.median(lat), max(lat)),
         "<= %d s (one sample period)" % kit.INTERVAL),
        ("events within one sample period", "%.1f %%" % s["within_pct"], "100 %"),
        ("false events", str(s["false"]), "0"),
        ("uplinks per day (readings / events / status)", "%d / %d / %d" % tuple(
            round(uplinks.get(k, 0) / days) for k in ("parking", "event", "status")), ""),
    ]
