"""How long the gateway takes to answer a LoRa uplink through the Semtech packet forwarder
ingress, against the node's receive delay (RX1, 1 s after the uplink ended):

PUSH_DATA sent -> PULL_RESP with the receipt received, for a steady stream of uplinks from
one or two packet forwarders (two: every frame is heard twice and the radio deduplication
picks the better copy), with the deduplication window at its default (0.2 s) and at 0.
The gateway runs as its own process (`python -m gateway`, store synchronous = "full"), the
forwarders are sockets of this process. Uplinks are at SF7, so that the receipts of a run
stay within the forwarder's hourly duty-cycle budget (36 s). Prints a table, never fails.

    .venv/bin/python -m bench.lora_downlink [--uplinks 300] [--rate 20]
"""
import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from rich.console import Console
from rich.table import Table

from gateway import inventory
from protocol import frame, schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EUIS = ("aa555a0000000001", "aa555a0000000002")
FILL = {"level_pct": 42.5, "distance_mm": 812, "temperature_c": 21.4, "hours_to_full": 40,
        "fault": 0}
RX1_MS = 1000.0


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fleet(folder, n):
    os.makedirs(os.path.join(folder, "keys"), mode=0o700)
    devices = []
    for i in range(n):
        dev_id = "fill-%04d" % i
        rel = "keys/%s.key" % dev_id
        key = inventory.write_key(os.path.join(folder, rel))
        devices.append(inventory.Device(id=dev_id, kind="fill", addr=0x200000 + i,
                                        key_file=os.path.join(folder, rel), key=key,
                                        key_file_as_written=rel, interval_s=600))
    path = os.path.join(folder, "inventory.toml")
    inventory.save(path, tuple(devices))
    return path, devices


def start_gateway(folder, inv, window_s):
    port = free_port(socket.SOCK_DGRAM)
    config = os.path.join(folder, "gateway-%s.toml" % window_s)
    with open(config, "w") as f:
        f.write('[gateway]\ninventory = "%s"\nlog_level = "warning"\n[ingress]\n'
                'dedup_window_s = %s\n[ingress.udp]\nport = 0\n[ingress.semtech]\n'
                'enabled = true\nport = %d\ngateway_euis = [%s]\n[store]\npath = "%s"\n'
                '[http]\nenabled = false\n'
                % (inv, window_s, port, ", ".join('"%s"' % e for e in EUIS),
                   os.path.join(folder, "store-%s.sqlite" % window_s)))
    log = open(os.path.join(folder, "gateway-%s.log" % window_s), "w")
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "--config", config], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    return proc, ("127.0.0.1", port)


class Forwarder:
    def __init__(self, eui, server):
        self.eui = bytes.fromhex(eui)
        self.server = server
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.down = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.down.setblocking(False)

    def pull(self):
        self.down.sendto(bytes((2, 0, 1, 2)) + self.eui, self.server)

    def push(self, data, tmst, lsnr):
        pk = {"tmst": tmst, "chan": 0, "rfch": 0, "freq": 868.1, "stat": 1, "modu": "LORA",
              "datr": "SF7BW125", "codr": "4/5", "rssi": -100, "lsnr": lsnr,
              "size": len(data), "data": base64.b64encode(data).decode()}
        self.up.sendto(bytes((2, 0, 2, 0)) + self.eui + json.dumps({"rxpk": [pk]}).encode(),
                       self.server)

    def responses(self):
        out = []
        while True:
            try:
                data = self.down.recv(4096)
            except BlockingIOError:
                return out
            if len(data) > 4 and data[3] == 3:
                out.append(json.loads(data[4:])["txpk"]["tmst"])


def run(folder, inv, devices, *, window_s, receivers, uplinks, rate):
    proc, server = start_gateway(folder, inv, window_s)
    try:
        fwds = [Forwarder(e, server) for e in EUIS[:receivers]]
        sent, answered = {}, {}
        for f in fwds:  # the gateway process may still be starting: PULL_DATA until acked
            deadline = time.monotonic() + 15
            while not _pulled(f):
                if time.monotonic() > deadline:
                    raise SystemExit("bench: the gateway does not answer PULL_DATA")
        fcnt = {}
        start = time.monotonic()
        for i in range(uplinks):
            due = start + i / rate
            while time.monotonic() < due:
                _collect(fwds, sent, answered)
                time.sleep(0.0005)
            dev = devices[i % len(devices)]
            n = fcnt.get(dev.id, 0)
            fcnt[dev.id] = n + 1
            data = frame.seal(frame.Keys(dev.key), schema.FILL, dev.addr, n,
                              schema.encode(schema.FILL, FILL))
            tmst = 1000 + i * 10000
            sent[tmst] = time.monotonic()
            for k, f in enumerate(fwds):
                f.push(data, tmst, 5.0 - k)
        end = time.monotonic() + 3
        while time.monotonic() < end and len(answered) < uplinks:
            _collect(fwds, sent, answered)
            time.sleep(0.001)
        return [answered[t] for t in sorted(answered)], uplinks
    finally:
        proc.terminate()
        proc.wait(10)


def _pulled(f):
    f.pull()
    time.sleep(0.2)
    try:
        return f.down.recv(64)[3] == 4
    except (BlockingIOError, ConnectionRefusedError):
        return False


def _collect(fwds, sent, answered):
    now = time.monotonic()
    for f in fwds:
        for tmst in f.responses():
            up = (tmst - 1000000) & 0xFFFFFFFF
            if up in sent and up not in answered:
                answered[up] = (now - sent[up]) * 1000


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--uplinks", type=int, default=300)
    p.add_argument("--rate", type=float, default=20.0, help="uplinks per second")
    args = p.parse_args(argv)
    table = Table(title="PUSH_DATA to receipt PULL_RESP (ms); RX1 is %d ms after the uplink"
                  % RX1_MS)
    for col in ("forwarders", "dedup window", "answered", "p50", "p99", "max",
                "min margin to RX1"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as folder:
        inv, devices = fleet(folder, 50)
        for receivers, window in ((1, 0.2), (2, 0.2), (1, 0.0)):
            lat, n = run(folder, inv, devices, window_s=window, receivers=receivers,
                         uplinks=args.uplinks, rate=args.rate)
            if not lat:
                table.add_row(str(receivers), "%.1f s" % window, "0/%d" % n, "", "", "", "")
                continue
            q = statistics.quantiles(lat, n=100) if len(lat) > 1 else lat * 99
            table.add_row(str(receivers), "%.1f s" % window, "%d/%d" % (len(lat), n),
                          "%.1f" % q[49], "%.1f" % q[98], "%.1f" % max(lat),
                          "%.0f" % (RX1_MS - max(lat)))
    Console().print(table)
    print("%d uplinks at %.0f/s from 50 devices; the gateway's own process, synchronous=full"
          % (args.uplinks, args.rate))


if __name__ == "__main__":
    main()
