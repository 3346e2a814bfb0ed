"""How long tools/flash takes on virtual boards (their console a pty, reached as an ESP32 on a
serial port), with --no-firmware: compile, deploy, config and key, inventory, first healthy
cycle. One fresh board, a re-run of it (nothing to write), and a batch of boards provisioned
one after the other (tools/flash once per board), against a gateway stand-in that checks
every frame with the key the tool wrote to the inventory.

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

from gateway import inventory
from hil_tests.virtual.board import VirtualBoard
from hil_tests.virtual.kits import kit
from hil_tests.virtual.receiver import Device, Receiver

ROOT = Path(__file__).resolve().parent.parent


def flash(board, device, inv, receiver):
    t0 = time.monotonic()
    done = subprocess.run([str(ROOT / "tools" / "flash"), "--port", board.port, "--device",
                           device, "--inventory", str(inv), "--gateway",
                           "127.0.0.1:%d" % receiver.port, "--no-firmware"],
                          capture_output=True, text=True, timeout=180)
    took = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit("tools/flash failed: %s" % done.stderr.strip())
    found = re.search(r"(\d+) file\(s\) / (\d+) bytes written", done.stdout)
    # The gateway stand-in learns the key from the inventory, as the gateway does.
    dev = inventory.load(inv).by_id(device)
    receiver.devices[dev.addr] = Device(dev.key)
    return took, int(found.group(1)), int(found.group(2))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=10)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cityedge-bench-flash-"))
    inv = work / "fleet.toml"
    receiver = Receiver({})
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
        rows.append(("one fresh board",) + flash(first, "fill-0001", inv, receiver))
        rows.append(("the same board again",) + flash(first, "fill-0001", inv, receiver))
        first.close()
        boards.remove(first)
        t0 = time.monotonic()
        total_files = total_bytes = 0
        for n in range(args.batch):
            b = board("b%02d" % n)
            _, files, written = flash(b, "fill-%04d" % (100 + n), inv, receiver)
            total_files += files
            total_bytes += written
            b.close()
            boards.remove(b)
        batch_s = time.monotonic() - t0
        rows.append(("batch of %d boards, total" % args.batch, batch_s, total_files,
                     total_bytes))
        rows.append(("batch, per board", batch_s / args.batch, total_files // args.batch,
                     total_bytes // args.batch))
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
