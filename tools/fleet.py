"""The main job: the gateway on its embedded defaults with a virtual fleet.

A few nodes of each sensor kind are provisioned (fleet inventory, one key file each,
owner-only) and run the unchanged firmware on virtual boards that talk Wi-Fi (UDP) to a
real gateway process. After a simulated stretch of time the gateway's own API is asked
what it received, and a table is printed. With --forever the fleet keeps going until
Ctrl-C, and the gateway's status page stays at http://127.0.0.1:8080/.

    ./run                     # 2 nodes per kind, 3 simulated hours
    ./run --hours 24 --per-kind 5
    ./run --forever
    ./run --lora              # over LoRa: the simulated air, a packet forwarder (Semtech UDP)
"""
import argparse
import json
import math
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hil_tests.virtual import kits
from hil_tests.virtual.board import VirtualBoard, deploy
from tools.mpybuild import ROOT

LORA_GATEWAY_EUI = "aa555a0000000001"
GATEWAY_CONFIG = """\
[gateway]
id = "fleet-demo"
inventory = "fleet.toml"

[store]
path = "var/gateway.sqlite"

[http]
port = {http_port}

[ingress.udp]
port = {udp_port}
"""


def write_inventory(work, per_kind):
    """fleet.toml plus keys/: what tools/flash writes for real boards."""
    keys = work / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    devices = []
    lines = []
    addr = 0x100000
    for kind in kits.available():
        for n in range(1, per_kind + 1):
            addr += 1
            device_id = "%s-%04d" % (kind, n)
            key = secrets.token_bytes(16)
            key_path = keys / (device_id + ".key")
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(key.hex() + "\n")
            kit = kits.kit(kind)
            lines += ["[[device]]", 'id = "%s"' % device_id, 'kind = "%s"' % kind,
                      'addr = "%06x"' % addr, 'key_file = "keys/%s.key"' % key_path.stem,
                      "interval_s = %d" % kit.INTERVAL, ""]
            devices.append((device_id, kind, addr, key))
    (work / "fleet.toml").write_text("\n".join(lines))
    return devices


class Gateway:
    def __init__(self, work, udp_port, http_port, extra=""):
        """extra: more TOML sections (a LoRa ingress, say) appended to the config."""
        (work / "gateway.toml").write_text(GATEWAY_CONFIG.format(udp_port=udp_port,
                                                                 http_port=http_port) + extra)
        self.url = "http://127.0.0.1:%d" % http_port
        self.log = open(work / "gateway.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "--config",
                                      str(work / "gateway.toml")], cwd=work,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.get("/healthz")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the gateway did not start: see %s" % self.log.name)
                time.sleep(0.1)

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=5) as reply:
            body = reply.read()
        return json.loads(body) if body[:1] in (b"{", b"[") else body.decode()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def run_board(board, until_s, stop, air=None):
    """Run a battery node cycle after cycle (or a mains node continuously) until its
    virtual clock reaches until_s; then its radio leaves the LoRa air, if any."""
    try:
        _run_board(board, until_s, stop)
    finally:
        if air is not None:
            for model in board.models.values():
                air.leave(model)


def _run_board(board, until_s, stop):
    mains = kits.kit(board.kind).POWER == "mains"
    while not stop.is_set() and board.vt < until_s * 1e6:
        board.start()
        if not mains:
            board.wait(timeout=60)
            continue
        while board.running and not stop.is_set() and board.vt < until_s * 1e6:
            time.sleep(0.05)
        board.kill()
        board.wait()  # a mains node that stopped by itself is powered up again


def summary(gateway, devices):
    states = {d["id"]: d for d in gateway.get("/api/devices")}
    table = Table(title="cityedge gateway %s: what the virtual fleet delivered" % gateway.url)
    for col in ("device", "kind", "uplinks", "last reading", "battery", "alarms"):
        table.add_column(col)
    for device_id, kind, _, _ in devices:
        state = states.get(device_id, {})
        values = (state.get("last_reading") or {}).get("values", {})
        shown = ", ".join("%s=%s" % (k, round(v, 2) if isinstance(v, float) else v)
                          for k, v in values.items() if not isinstance(v, (dict, list)))
        battery = state.get("battery_v")
        table.add_row(device_id, kind, str(state.get("uplinks", 0)), shown[:80],
                      "%.2f V" % battery if battery else "mains" if kind == "luminaire" else "",
                      ", ".join(state.get("alarms") or []))
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(prog="./run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=3.0, help="simulated hours (default 3)")
    parser.add_argument("--per-kind", type=int, default=2, help="nodes per sensor kind")
    parser.add_argument("--forever", action="store_true", help="keep running until Ctrl-C")
    parser.add_argument("--work", default=str(ROOT / "var" / "fleet"),
                        help="folder for the inventory, keys, gateway database and logs")
    parser.add_argument("--udp-port", type=int, default=4700)
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--lora", action="store_true",
                        help="nodes send over LoRa (Wi-Fi as fallback) through the simulated "
                             "air and a packet forwarder to the gateway's Semtech UDP ingress")
    parser.add_argument("--semtech-port", type=int, default=1700)
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 120))
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    devices = write_inventory(work, args.per_kind)
    console.print("fleet: %d nodes (%s), gateway on udp %d, status page http://127.0.0.1:%d/"
                  % (len(devices), ", ".join(kits.available()), args.udp_port, args.http_port))
    air = forwarder = None
    extra = ""
    if args.lora:
        from hil_tests.virtual.air import Air
        from hil_tests.virtual.packet_forwarder import PacketForwarder
        extra = ('\n[ingress.semtech]\nenabled = true\nport = %d\ngateway_euis = ["%s"]\n'
                 % (args.semtech_port, LORA_GATEWAY_EUI))
    gateway = Gateway(work, args.udp_port, args.http_port, extra=extra)
    if args.lora:
        air = Air(answer_timeout=5.0)  # the gateway may be slow to answer on a busy host
        forwarder = PacketForwarder(air, ("127.0.0.1", args.semtech_port),
                                    eui=LORA_GATEWAY_EUI).start()
    image = deploy(work / "image")
    boards, threads, stop = [], [], threading.Event()
    try:
        for device_id, kind, addr, key in devices:
            flash = work / "boards" / device_id / "flash"
            shutil.copytree(image, flash)
            deploy(flash, packages=(), key=key, config=kits.node_config(
                kind, addr=addr, gateway_port=args.udp_port, device_id=device_id,
                lora=args.lora))
            models = kits.kit(kind).models()
            if air is not None:  # around the gateway, out to 2 km
                angle, dist = random.uniform(0, 2 * math.pi), random.uniform(100, 2000)
                models += kits.lora_models(air, name=device_id, position=(
                    dist * math.cos(angle), dist * math.sin(angle)))
            # The LoRa link's modules need more heap than Wi-Fi alone (as in its tests).
            board = VirtualBoard(flash, name=device_id, log_dir=flash.parent,
                                 models=models, heap="128K" if args.lora else "96K")
            board.kind = kind
            boards.append(board)
        until = float("inf") if args.forever else args.hours * 3600
        for board in boards:
            thread = threading.Thread(target=run_board, args=(board, until, stop, air),
                                      daemon=True)
            thread.start()
            threads.append(thread)
        started = time.monotonic()
        for thread in threads:
            thread.join()
        console.print("simulated %.1f h in %.0f s of wall time"
                      % (args.hours, time.monotonic() - started))
        time.sleep(0.5)  # the last receipts and the store's batch
        console.print(summary(gateway, devices))
        metrics = gateway.get("/metrics")
        accepted = [line for line in metrics.splitlines()
                    if line.startswith(("cityedge_frames_total", "cityedge_rejected_total"))]
        console.print("\n".join(accepted[:12]))
    except KeyboardInterrupt:
        stop.set()
        for thread in threads:
            thread.join(5)
    finally:
        for board in boards:
            board.close()
        if forwarder is not None:
            forwarder.close()
        gateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
