"""How long tools/flash takes on virtual boards (their console a pty, reached as an ESP32 on a
serial port), with --no-firmware: compile, deploy, config and key, inventory, first healthy
cycle. One fresh board, a re-run of it (nothing to write), and a batch of boards provisioned
by one `tools/flash --batch` command (one port per board), against a gateway stand-in that
checks every frame with the key the tool wrote to the inventory.

    .venv/bin/python -m bench.flash [--batch 10]
"""
import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hil_tests.virtual.board import VirtualBoard
from hil_tests.virtual.kits import kit
from hil_tests.virtual.receiver import InventoryDevices, Receiver

ROOT = Path(__file__).resolve().parent.parent


def flash(inv, receiver, *args):
    """Run tools/flash; (wall time, [(files, bytes) written per board])."""
    t0 = time.monotonic()
    done = subprocess.run([str(ROOT / "tools" / "flash"), *args, "--inventory", str(inv),
                           "--gateway", "127.0.0.1:%d" % receiver.port, "--no-firmware"],
                          capture_output=True, text=True, timeout=1800,
                          stdin=subprocess.DEVNULL)
    took = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit("tools/flash failed: %s%s" % (done.stdout, done.stderr.strip()))
    found = re.findall(r"^ok: .* (\d+) file\(s\) / (\d+) bytes written", done.stdout, re.M)
    return took, [(int(f), int(b)) for f, b in found]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=10)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cityedge-bench-flash-"))
    inv = work / "fleet.toml"
    receiver = Receiver({})
    # The gateway stand-in reads the keys from the inventory, as the gateway does.
    receiver.devices = InventoryDevices(str(inv))
    boards = []
    rows = []
    try:
        def board(name):
            b = VirtualBoard(work / name / "flash", name=name, log_dir=work, console="pty",
                             models=kit("fill").models())
            boards.append(b)
            b.start()
            return b

        first = board("one")
        for name in ("one fresh board", "the same board again"):
            took, [(files, written)] = flash(inv, receiver, "--port", first.port, "--device",
                                             "fill-0001")
            rows.append((name, took, files, written))
        first.close()
        boards.remove(first)
        ports = [a for n in range(args.batch) for a in ("--port", board("b%02d" % n).port)]
        took, done = flash(inv, receiver, "--batch", "--count", str(args.batch), "--kind",
                           "fill", *ports)
        if len(done) != args.batch:
            raise SystemExit("the batch provisioned %d of %d boards" % (len(done), args.batch))
        files, written = sum(f for f, _ in done), sum(b for _, b in done)
        rows.append(("batch of %d boards, one command" % args.batch, took, files, written))
        rows.append(("batch, per board", took / args.batch, files // args.batch,
                     written // args.batch))
    finally:
        for b in boards:
            b.close()
        receiver.close()
    table = Table(title="tools/flash --no-firmware on virtual boards (target: < 20 s a board)")
    for col in ("run", "wall time", "files written", "bytes written"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for name, took, files, written in rows:
        table.add_row(name, "%.1f s" % took, str(files), str(written))
    Console().print(table)


if __name__ == "__main__":
    main()
