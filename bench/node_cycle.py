"""The node's cycle on a virtual board (firmware as .mpy, MicroPython unix port):

- the smallest firmware heap (-X heapsize, excluding the shim that stands in for the
  chip's built-in modules) at which a cold boot and a full cycle still complete, per kind
  (a mains luminaire: its first reporting cycles, in one run);
- the awake time of a cycle without the sensor's own conversion time and the radio;
- the wall time of a simulated 30 days at a 10-minute interval: 4,320 deep sleeps, each a
  real restart of the interpreter, as on the chip.

    .venv/bin/python -m bench.node_cycle [--days 30] [--interval 600] [--no-heap]
"""
import argparse
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hil_tests.virtual import kits
from hil_tests.virtual.board import VirtualBoard, deploy
from hil_tests.virtual.receiver import Receiver

KEY = bytes(range(16))
ADDR = 0x12AB34
CYCLE_LINE = re.compile(r"awake (\d+) ms \(sensor (\d+), tx (\d+), rx (\d+)\)")


class Rig:
    """A board with its firmware and a receiver, in a temporary folder."""

    def __init__(self, image, kind, heap="96K", interval=600):
        self.dir = Path(tempfile.mkdtemp(prefix="cityedge-bench-"))
        self.receiver = Receiver({ADDR: KEY})
        flash = self.dir / "flash"
        shutil.copytree(image, flash)
        cfg = kits.node_config(kind, addr=ADDR, gateway_port=self.receiver.port,
                               interval_s=interval)
        deploy(flash, packages=(), config=cfg, key=KEY)
        self.board = VirtualBoard(flash, name=kind, heap=heap, log_dir=self.dir,
                                  models=kits.kit(kind).models())

    def close(self):
        self.board.close()
        self.receiver.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def battery_kinds():
    """The kinds that deep-sleep between cycles (a mains-powered luminaire never does)."""
    return [k for k in kits.available() if kits.kit(k).POWER == "battery"]


def cycles_complete(image, kind, heap):
    rig = Rig(image, kind, heap)
    try:
        if kits.kit(kind).POWER == "mains":  # never sleeps: two reporting cycles in one run
            rig.board.start()
            deadline = time.monotonic() + 60
            while (len(rig.receiver.accepted) < 3 and rig.board.running
                   and time.monotonic() < deadline):
                time.sleep(0.05)  # a crash ends the run at once: no waiting for frames
            rig.board.kill()
            rig.board.wait()
            ended_well = True
        else:
            ended_well = all(r.end == "deepsleep" for r in rig.board.run(2))
        return (ended_well and not any("Error" in line for line in rig.board.console)
                and len(rig.receiver.accepted) >= 3)
    finally:
        rig.close()


def smallest_heap(image, kind, low=32, high=128):
    """In KB, to 2 KB."""
    if not cycles_complete(image, kind, "%dK" % high):
        return None
    while high - low > 2:
        mid = (low + high) // 2
        if cycles_complete(image, kind, "%dK" % mid):
            high = mid
        else:
            low = mid
    return high


def month(image, kind, days, interval):
    rig = Rig(image, kind, interval=interval)
    cycles = days * 86400 // interval
    try:
        start = time.monotonic()
        rig.board.run(cycles, timeout=30)
        wall = time.monotonic() - start
        awake = [CYCLE_LINE.search(line) for line in rig.board.console]
        awake = [m for m in awake if m]
        cpu = [int(m[1]) - int(m[2]) - int(m[3]) - int(m[4]) for m in awake]
        ends = [r.end for r in rig.board.runs]
        return {"cycles": cycles, "wall": wall, "deep sleeps": ends.count("deepsleep"),
                "received": len(rig.receiver.accepted),
                "awake": statistics.median(int(m[1]) for m in awake),
                "cpu": statistics.median(cpu), "cpu_p95": sorted(cpu)[int(len(cpu) * 0.95)]}
    finally:
        rig.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--interval", type=int, default=600)
    parser.add_argument("--no-heap", action="store_true")
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 120))
    image = deploy(Path(tempfile.mkdtemp(prefix="cityedge-image-")))
    if not args.no_heap:
        table = Table(title="Smallest firmware heap for a cold boot plus a full cycle (.mpy)")
        table.add_column("kind")
        table.add_column("smallest heap", justify="right")
        for kind in kits.available():
            heap = smallest_heap(image, kind)
            table.add_row(kind, "%d KB" % heap if heap else "over 128 KB")
        console.print(table)
    table = Table(title="Simulated %d days at a %d s interval (virtual board, this host's CPU)"
                  % (args.days, args.interval))
    for col in ("kind", "cycles", "deep sleeps", "frames received", "wall time",
                "awake (median)", "awake without sensor and radio (median / p95)"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for kind in battery_kinds():
        r = month(image, kind, args.days, args.interval)
        table.add_row(kind, str(r["cycles"]), str(r["deep sleeps"]), str(r["received"]),
                      "%.0f s" % r["wall"], "%d ms" % r["awake"],
                      "%d / %d ms" % (r["cpu"], r["cpu_p95"]))
    console.print(table)


if __name__ == "__main__":
    main()
