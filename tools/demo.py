"""The main job, for now: one reading of each sensor kind is encoded, encrypted and
authenticated by the real MicroPython runtime (protocol/ compiled to .mpy, heap capped as
on an ESP32), then checked and decoded on CPython as the gateway does. Prints a table."""
import argparse
import sys
import tempfile

from rich.console import Console
from rich.table import Table

from protocol import airtime, counters, frame, schema
from protocol.errors import ProtocolError
from tools import mpybuild
from tools.samples import DEMO_ADDR, DEMO_KEY


def node_frames(heap):
    """Frames sealed on MicroPython: [(kind name, bytes)]."""
    with tempfile.TemporaryDirectory() as build:
        mpybuild.build_sealer(build)
        result = mpybuild.run(mpybuild.SEALER, [build], heap=heap,
                              args=(DEMO_KEY.hex(), "%06x" % DEMO_ADDR, "1"))
    if result.returncode != 0:
        raise RuntimeError("MicroPython failed:\n" + result.stdout + result.stderr)
    frames = []
    for line in result.stdout.splitlines():
        name, hexframe = line.split()
        frames.append((name, bytes.fromhex(hexframe)))
    return frames


def verify(data, keys, window):
    """What a gateway does with a frame: header, counter, MIC, replay, decrypt, decode."""
    header = frame.parse_header(data)
    fcnt = counters.full_counter(window.newest, header.fcnt_low)
    window.check(fcnt)
    body = frame.unseal(keys, data, fcnt)
    window.accept(fcnt)
    return header, fcnt, schema.decode(header.kind, body)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="./run", description=__doc__)
    parser.add_argument("--heap", default="32K", help="MicroPython heap cap (default 32K)")
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 120))
    frames = node_frames(args.heap)
    keys = frame.Keys(DEMO_KEY)
    window = counters.ReplayWindow()
    table = Table(title="cityedge: sealed on MicroPython (heap %s), verified on CPython"
                  % args.heap)
    for column in ("kind", "device", "counter", "bytes", "SF7 ms", "SF12 ms", "MIC", "reading"):
        table.add_column(column, justify="right" if "ms" in column or column == "bytes" else "left")
    failures = 0
    for name, data in frames:
        try:
            header, fcnt, reading = verify(data, keys, window)
        except ProtocolError as e:
            failures += 1
            table.add_row(name, "", "", str(len(data)), "", "", "[red]rejected", str(e))
            continue
        table.add_row(name, "%06x" % header.addr, str(fcnt), str(len(data)),
                      "%.1f" % airtime.time_on_air_ms(len(data), 7),
                      "%.1f" % airtime.time_on_air_ms(len(data), 12), "[green]ok",
                      ", ".join("%s=%s" % kv for kv in reading.items()))
    console.print(table)
    replayed = frames[0][1]
    try:
        verify(replayed, keys, window)
        failures += 1
        console.print("[red]a replayed frame was accepted")
    except ProtocolError as e:
        console.print("replaying the first frame again: [green]rejected[/] (%s)" % e)
    if failures:
        console.print("[red]%d frame(s) failed" % failures)
        return 1
    console.print("all %d frames verified" % len(frames))
    return 0


if __name__ == "__main__":
    sys.exit(main())
