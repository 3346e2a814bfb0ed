"""A LoRa fleet on one channel at SF9, 10-minute interval: what gets through.

Two runs, each printed as a table:

1. End to end: virtual nodes running the unchanged firmware (fill kit, LoRa only, channel
   868.1 MHz, SF9) on the simulated air, a single-channel packet forwarder at the centre
   feeding a real gateway process over the Semtech UDP protocol; receipts in RX1, or in RX2
   (869.525 MHz) once RX1's sub-band is spent. Measured: uplinks sent, delivered by the air,
   distinct frames among them and accepted by the gateway (each once); the frames the
   gateway never got, with their fate in the air's log; the offered load G (airtime on air /
   span) and the pure-ALOHA prediction exp(-2G) for it; airtime per node per day; the
   gateway's downlinks per sub-band; duty-cycle violations of the nodes (a node sending on a
   sub-band before its off-time T x (1/dc - 1) after the previous packet ended) and of the
   gateway (more than dc x 1 h of airtime in any hour). Default: 50 nodes for a simulated
   day (about 15 minutes on 2 cores); --nodes 200 --minutes 240 for the issue's fleet size.
2. The air alone with synthetic transmitters for a full day at the same load and frame size
   (pure CPython), to put the end-to-end figure next to a long run of the air's model.

    .venv/bin/python -m bench.lora [--nodes 50] [--minutes 1440] [--day-nodes 200]
"""
import argparse
import collections
import math
import random
import secrets
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hil_tests.virtual import kits
from hil_tests.virtual.air import Air, Modulation, Transmitter, aloha_success
from hil_tests.virtual.board import VirtualBoard, deploy
from hil_tests.virtual.packet_forwarder import PacketForwarder
from protocol import airtime
from tools.fleet import Gateway

CHANNEL = 868100000
SF = 9
EUI = "aa555a00000000b1"
DAY_US = 86400 * 10 ** 6
RUNNING = 4  # boards that may start a wake at once (see end_to_end)


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def duty_cycle_violations(frames):
    """Uplinks sent before their sender's sub-band reopened after its previous packet."""
    by_node = collections.defaultdict(list)
    for f in frames:
        by_node[(f.sender, airtime.eu868_sub_band(f.freq_hz)[0])].append(f)
    violations = 0
    for (_, band), sent in by_node.items():
        dc = [b[3] for b in airtime.EU868_SUB_BANDS if b[0] == band][0]
        sent.sort(key=lambda f: f.start)
        for before, after in zip(sent, sent[1:]):
            if after.start < before.end + airtime.off_time_ms(
                    (before.end - before.start) / 1000, dc) * 1000:
                violations += 1
    return violations


def end_to_end(nodes, minutes, console):
    work = Path(tempfile.mkdtemp(prefix="cityedge-bench-lora-"))
    (work / "keys").mkdir()
    lines, devices = [], []
    for n in range(nodes):
        device_id, addr, key = "fill-%04d" % n, 0x0C0000 + n, secrets.token_bytes(16)
        (work / "keys" / (device_id + ".key")).write_text(key.hex())
        (work / "keys" / (device_id + ".key")).chmod(0o600)
        lines += ["[[device]]", 'id = "%s"' % device_id, 'kind = "fill"',
                  'addr = "%06x"' % addr, 'key_file = "keys/%s.key"' % device_id,
                  "interval_s = 600", ""]
        devices.append((device_id, addr, key))
    (work / "fleet.toml").write_text("\n".join(lines))
    semtech = free_port(socket.SOCK_DGRAM)
    gateway = Gateway(work, free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM),
                      # One forwarder hears each frame once: no copies to wait for.
                      extra='\n[ingress]\ndedup_window_s = 0\n'
                            '\n[ingress.semtech]\nenabled = true\nport = %d\n'
                            'gateway_euis = ["%s"]\n' % (semtech, EUI))
    # A loaded host may take seconds to let the gateway process answer: wait for it.
    air = Air(answer_timeout=5.0, max_wait=120)
    forwarder = PacketForwarder(air, ("127.0.0.1", semtech), eui=EUI, channels_hz=(CHANNEL,),
                                sfs=(SF,)).start()
    image = deploy(work / "image")
    rng = random.Random(5)
    boards = []
    for device_id, addr, key in devices:
        flash = work / device_id / "flash"
        shutil.copytree(image, flash)
        deploy(flash, packages=(), key=key, config=kits.node_config(
            "fill", addr=addr, gateway_port=1, device_id=device_id, transports=["lora"],
            lora={"sf": SF, "channels": [CHANNEL]}))
        # Nodes around the gateway, out to 2 km; each first powered at a random instant of
        # the first interval, so their cycles are not in step.
        angle, dist = rng.uniform(0, 6.283), rng.uniform(100, 2000)
        radio, *pins = kits.lora_models(air, name=device_id,
                                        position=(dist * math.cos(angle), dist * math.sin(angle)))
        board = VirtualBoard(flash, name=device_id, log_dir=flash.parent, heap="128K",
                             models=[*kits.kit("fill").models(), radio, *pins],
                             vt_start_us=int(rng.uniform(0, 600) * 1e6))
        board.radio = radio
        boards.append(board)
    until_us = minutes * 60 * 10 ** 6
    started = time.monotonic()

    # A board's chip runs in real time while it is awake: an interpreter that waits for the
    # CPU is a chip running slow (a late receive window, a missed TxDone, a watchdog reset).
    # So only the RUNNING boards furthest behind in virtual time may start a wake; the one
    # furthest behind always may, so the air's waits still end.
    turns = {id(b): threading.Event() for b in boards}
    done = threading.Event()

    def cycle(board):
        try:
            while board.vt < until_us:
                turns[id(board)].wait()
                board.run(1, timeout=300)
                turns[id(board)].clear()  # its next wake waits for its turn again
        finally:
            air.leave(board.radio)
            board.finished = True

    def schedule():
        while not done.is_set():
            waiting = sorted((b for b in boards if not getattr(b, "finished", False)),
                             key=lambda b: b.vt)
            for n, board in enumerate(waiting):
                (turns[id(board)].set if n < RUNNING else turns[id(board)].clear)()
            time.sleep(0.005)

    threads = [threading.Thread(target=cycle, args=(b,), daemon=True) for b in boards]
    scheduler = threading.Thread(target=schedule, daemon=True)
    scheduler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    wall = time.monotonic() - started
    time.sleep(1.0)  # the gateway's last records
    accepted = sum(d["uplinks"] for d in gateway.get("/api/devices"))
    for board in boards:
        board.close()
    forwarder.close()
    gateway.stop()
    # Nodes finish their last cycle past the span: count every frame sent.
    ups = [f for f in air.frames if not f.iq_inverted]
    fates = collections.Counter(e["fate"] for e in air.log if e["receiver"] == forwarder.label)
    # A node sends a frame again while it has no receipt for it: the gateway accepts a
    # frame once, however often the air delivered it.
    by_id = {f.id: f for f in ups}
    distinct = {(by_id[e["frame"]].sender, by_id[e["frame"]].payload) for e in air.log
                if e["receiver"] == forwarder.label and e["fate"] == "delivered"
                and e["frame"] in by_id}
    span_us = max(f.end for f in air.frames) - min(f.start for f in ups) if ups else until_us
    down_fates = collections.Counter(e["fate"] for e in air.log
                                     if not e["receiver"].startswith("gw-"))
    # Frames the gateway never got: each must have its reason in the air's log.
    at_gateway = collections.defaultdict(list)
    for e in air.log:
        if e["receiver"] == forwarder.label and e["frame"] in by_id:
            f = by_id[e["frame"]]
            at_gateway[(f.sender, f.payload)].append(e["fate"])
    missing = {(f.sender, f.payload) for f in ups} - distinct
    explained = collections.Counter(at_gateway[k][-1] for k in missing if at_gateway[k])
    span = "a simulated day" if minutes == 1440 else "%g simulated minutes" % minutes
    report(console, "end to end: %d firmware nodes, %s, %.0f s of wall time"
           % (nodes, span, wall), ups, fates, span_us, nodes,
           accepted=accepted, distinct=len(distinct), down_fates=down_fates,
           downlinks=[f for f in air.frames if f.iq_inverted],
           missing=(len(missing), explained))
    shutil.rmtree(work, ignore_errors=True)


def synthetic_day(nodes, size, console):
    air = Air()
    rng = random.Random(11)
    modulation = Modulation(CHANNEL, SF)
    started = time.monotonic()
    for n in range(nodes):
        angle, dist = rng.uniform(0, 6.283), rng.uniform(100, 2000)
        node = Transmitter("n%d" % n, (dist * math.cos(angle), dist * math.sin(angle)))
        t = rng.uniform(0, 600e6)
        while t < DAY_US:
            node.send(air, bytes(size), int(t), modulation)
            t += 600e6 + rng.uniform(-5e6, 5e6)  # the firmware's interval and its jitter

    class Gw:
        label, position = "gw", (0.0, 0.0)

        @staticmethod
        def transmissions():
            return ()
    fates = collections.Counter(air.fate(f, Gw, wait=False).status for f in air.frames)
    report(console, "the air alone: %d synthetic nodes, %d-byte frames, one simulated day, "
           "%.1f s of wall time" % (nodes, size, time.monotonic() - started),
           air.frames, fates, DAY_US, nodes)


def gateway_violations(downlinks):
    """Hours (sliding, from each downlink's start) in which the gateway sent more than its
    sub-band's duty cycle allows."""
    by_band = collections.defaultdict(list)
    for f in downlinks:
        by_band[airtime.eu868_sub_band(f.freq_hz)].append(f)
    violations = 0
    for (_, _, _, dc), sent in by_band.items():
        sent.sort(key=lambda f: f.start)
        used, last = 0, 0  # airtime of sent[i:last], the frames within an hour of sent[i]
        for i, first in enumerate(sent):
            while last < len(sent) and sent[last].start < first.start + 3600e6:
                used += sent[last].end - sent[last].start
                last += 1
            violations += used > dc * 3600e6
            used -= first.end - first.start
    return violations


def report(console, title, ups, fates, span_us, nodes, accepted=None, distinct=None,
           downlinks=(), down_fates=None, missing=None):
    on_air_us = sum(f.end - f.start for f in ups)
    load = on_air_us / span_us
    delivered = fates.get("delivered", 0)
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("uplinks sent", str(len(ups)))
    table.add_row("delivered by the air to the gateway", "%d (%.1f %%)"
                  % (delivered, 100 * delivered / max(1, len(ups))))
    if accepted is not None:
        table.add_row("distinct frames among those delivered", str(distinct))
        table.add_row("accepted by the gateway (end to end)", "%d (%.1f %% of sent)"
                      % (accepted, 100 * accepted / max(1, len(ups))))
    table.add_row("offered load G (airtime / span)", "%.4f" % load)
    table.add_row("pure ALOHA prediction exp(-2G)", "%.1f %%" % (100 * aloha_success(load)))
    for status in sorted(s for s in fates if s != "delivered"):
        table.add_row("lost: %s" % status, str(fates[status]))
    table.add_row("airtime per node per day", "%.1f s" % (on_air_us / 1e6 / nodes
                                                          * DAY_US / span_us))
    if downlinks:
        table.add_row("downlinks sent / receptions by listening nodes", "%d / %d" % (
            len(downlinks), down_fates.get("delivered", 0)))
        for band in sorted({airtime.eu868_sub_band(f.freq_hz)[0] for f in downlinks}):
            sent = [f for f in downlinks if airtime.eu868_sub_band(f.freq_hz)[0] == band]
            dc = airtime.eu868_sub_band(sent[0].freq_hz)[3]
            table.add_row("gateway downlinks in %s MHz (duty cycle %g %%)" % (band, 100 * dc),
                          "%d, %.2f %% of the time" % (
                              len(sent), 100 * sum(f.end - f.start for f in sent) / span_us))
    if missing is not None:
        count, reasons = missing
        table.add_row("frames the gateway never got / their fate in the air's log",
                      "%d / %s" % (count, ", ".join("%s %d" % r for r in sorted(reasons.items()))
                                   or "-"))
        table.add_row("... of them without an entry in the log", str(count - sum(reasons.values())))
    table.add_row("duty-cycle violations (nodes)", str(duty_cycle_violations(ups)))
    if downlinks:
        table.add_row("duty-cycle violations (gateway, any hour)",
                      str(gateway_violations(downlinks)))
    console.print(table)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=50, help="firmware nodes (end to end)")
    parser.add_argument("--minutes", type=float, default=1440, help="simulated minutes")
    parser.add_argument("--day-nodes", type=int, default=200, help="synthetic nodes")
    parser.add_argument("--size", type=int, default=20,
                        help="synthetic frame size (a fill reading is 20 bytes)")
    parser.add_argument("--no-firmware", action="store_true", help="the air alone")
    args = parser.parse_args(argv)
    console = Console(width=110)
    synthetic_day(args.day_nodes, args.size, console)
    if not args.no_firmware:
        end_to_end(args.nodes, args.minutes, console)


if __name__ == "__main__":
    main()
