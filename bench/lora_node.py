"""A LoRa node's first cycle on a virtual board, end to end: the node (firmware as .mpy) sends
through the simulated air to a second board running the firmware in bridge mode, whose
serial lines a host answers as the gateway would (hil_tests/virtual/bridge_host.py).

Prints, per spreading factor, the smallest firmware heap (-X heapsize, excluding the shim) at
which a cold boot and its cycle still complete with every frame confirmed, and the cycle's
awake, transmit and receive times; with the smallest heap of a node that has Wi-Fi as its
fallback (its LoRa carries the frames), and of the Wi-Fi node, beside them.

    .venv/bin/python -m bench.lora_node [--kind fill] [--sf 7 9]
"""
import argparse
import json
import re
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.node_cycle import smallest_heap as wifi_smallest_heap
from hil_tests.virtual import kits
from hil_tests.virtual.air import Air
from hil_tests.virtual.board import VirtualBoard, deploy
from hil_tests.virtual.bridge_host import BridgeHost
from hil_tests.virtual.models.sx127x import SX127x

KEY = bytes(range(16))
ADDR = 0x12AB34
PINS = {"cs": 15, "dio0": 26, "reset": 14, "sck": 12, "mosi": 13, "miso": 25}
CYCLE_LINE = re.compile(r"awake (\d+) ms \(sensor (\d+), tx (\d+), rx (\d+)\)")


def _radio(air, name, position):
    return SX127x(bus="spi1", cs=PINS["cs"], dio0=PINS["dio0"], reset=PINS["reset"], air=air,
                  name=name, position=position)


def first_cycle(image, kind, sf, heap, transports=("lora",)):
    """(completed, awake line match) of a cold boot with a bridge answering."""
    work = Path(tempfile.mkdtemp(prefix="cityedge-bench-lora-"))
    # The two boards keep their own virtual clocks: the wide window covers the bridge's lag,
    # the longer delay gives the host time to answer (as in tests/firmware/test_lora_link.py).
    lora = dict(PINS, sf=sf, channels=[868100000], rx_window_ms=3000, rx_delay_ms=2000)
    air = Air()
    boards, radios, host = [], [], None
    try:
        bflash = work / "bridge"
        shutil.copytree(image, bflash)
        (bflash / "bridge.json").write_text(json.dumps({"lora": lora}))
        bradio = _radio(air, "bridge", (200.0, 0.0))
        radios.append(bradio)
        bridge = VirtualBoard(bflash, name="bridge", log_dir=work, console="pty",
                              models=[bradio, *bradio.pins()])
        boards.append(bridge)
        bridge.start()
        bridge.expect(r"^READY 1 ", timeout=30)
        host = BridgeHost(bridge, ADDR, KEY, rx_delay_ms=2000)
        nflash = work / "node"
        shutil.copytree(image, nflash)
        cfg = kits.node_config(kind, addr=ADDR, gateway_port=9, transports=list(transports),
                               lora=lora)
        deploy(nflash, packages=(), config=cfg, key=KEY)
        nradio = _radio(air, "node", (0.0, 0.0))
        radios.append(nradio)
        node = VirtualBoard(nflash, name="node", heap=heap, log_dir=work,
                            models=[*kits.kit(kind).models(), nradio, *nradio.pins()])
        boards.append(node)
        run = node.run(timeout=120)[0]
        cycle = next((CYCLE_LINE.search(x) for x in node.console if CYCLE_LINE.search(x)), None)
        done = (run.end == "deepsleep" and not any("Error" in x for x in node.console)
                and "0 frame(s) queued" in "\n".join(node.console) and len(host.accepted) >= 2)
        return done, cycle
    finally:
        if host:
            host.close()
        for radio in radios:
            air.leave(radio)
        for board in boards:
            board.close()
        shutil.rmtree(work, ignore_errors=True)


def smallest_heap(image, kind, sf, low=64, high=128, transports=("lora",)):
    """In KB, to 2 KB."""
    if not first_cycle(image, kind, sf, "%dK" % high, transports)[0]:
        return None
    while high - low > 2:
        mid = (low + high) // 2
        if first_cycle(image, kind, sf, "%dK" % mid, transports)[0]:
            high = mid
        else:
            low = mid
    return high


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", default="fill", choices=kits.available())
    parser.add_argument("--sf", type=int, nargs="+", default=[7, 9])
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 120))
    image = deploy(Path(tempfile.mkdtemp(prefix="cityedge-image-")))
    table = Table(title="%s node, cold boot and first cycle (reading + status, each "
                        "confirmed in its receive window)" % args.kind)
    for column in ("transport", "smallest heap (KB)", "awake ms", "tx ms", "rx ms",
                   "wall s"):
        table.add_column(column, justify="right")
    for sf in args.sf:
        start = time.monotonic()
        done, cycle = first_cycle(image, args.kind, sf, "96K")
        wall = time.monotonic() - start
        heap = smallest_heap(image, args.kind, sf)
        figures = [cycle[1], cycle[3], cycle[4]] if cycle else ["-"] * 3
        table.add_row("LoRa SF%d 125 kHz" % sf, str(heap), *figures,
                      "%.1f" % wall if done else "failed at 96K")
    sf = args.sf[-1]
    table.add_row("LoRa SF%d, Wi-Fi as fallback" % sf,
                  str(smallest_heap(image, args.kind, sf, transports=("lora", "wifi"))),
                  "", "", "", "")
    table.add_row("Wi-Fi (bench.node_cycle: two cycles)",
                  str(wifi_smallest_heap(image, args.kind)), "", "", "", "")
    console.print(table)
    console.print("The awake time includes the duty-cycle wait between the two frames "
                  "(one sub-band: the second frame waits 99x the first one's airtime).")


if __name__ == "__main__":
    main()
