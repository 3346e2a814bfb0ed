"""Gateway throughput, latency and memory against a real Mosquitto, in one run:

* throughput, UDP ingress to broker, with the durable outbox (the gateway, one core) next to a
  bare relay (receive UDP, publish QoS 1, nothing else; same core, same broker);
* latency from sending a frame to its delivery by the broker at a steady rate (1,000 frames/s);
* resident memory of the gateway after those frames; with --memory N, a run of its own that
  feeds N frames (one million for the issue's figure) and reads VmRSS at every tenth.

Both servers run pinned to CPU 0 (taskset); the sender, Mosquitto and the subscriber share the
other cores. A frame counts once it is delivered to a subscriber (the broker has PUBACKed it
by then). The sender keeps at most --window frames unanswered: the gateway answers with its
receipt (after the COMMIT), the relay with one byte (on receipt). Prints tables, never fails.

Relay and gateway run in turn (--rounds), both processes up all along, so that each ratio
compares runs made side by side on a machine whose load may change; the CPU time each
process used per frame (from /proc) is printed too, as it depends far less on that load.

    .venv/bin/python -m bench.gateway [--frames 100000] [--rounds 2] [--rate 1000] [--seconds 5]
    .venv/bin/python -m bench.gateway --memory 1000000 [--local]
"""
import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
from rich.console import Console
from rich.table import Table

from protocol import frame, schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOSQUITTO = "/usr/sbin/mosquitto"
FILL = {"level_pct": 42.5, "distance_mm": 812, "temperature_c": 21.4, "hours_to_full": 40,
        "fault": 0}


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise SystemExit("bench: timed out waiting for %s" % what)


def pinned(cmd):
    return (["taskset", "-c", "0"] + cmd) if shutil.which("taskset") and os.cpu_count() > 1 else cmd


class Broker:
    def __init__(self, folder):
        self.port = free_port()
        conf = os.path.join(folder, "mosquitto.conf")
        lines = ["listener %d 127.0.0.1" % self.port, "allow_anonymous true",
                 "max_queued_messages 1000000", "max_inflight_messages 0"]
        if os.geteuid() == 0:
            lines.append("user root")
        open(conf, "w").write("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, 10, "mosquitto")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Subscriber:
    """Counts deliveries and notes when each key arrived (the user property "key", or the
    payload for the relay)."""

    def __init__(self, port):
        self.arrived = {}
        self.lock = threading.Lock()
        ok = threading.Event()
        c = self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.on_connect = lambda cl, *a: cl.subscribe("#", qos=1)
        c.on_subscribe = lambda *a: ok.set()
        c.on_message = self._message
        c.connect("127.0.0.1", port)
        c.loop_start()
        ok.wait(10)

    def _message(self, client, userdata, msg):
        props = dict(getattr(msg.properties, "UserProperty", []) or [])
        key = props.get("key") or msg.payload.decode()
        with self.lock:
            self.arrived.setdefault(key, time.perf_counter())

    def count(self):
        with self.lock:
            return len(self.arrived)

    def reset(self):
        with self.lock:
            self.arrived = {}

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


class Fleet:
    def __init__(self, folder, devices):
        from gateway import inventory
        self.devices = []
        for i in range(devices):
            key_file = os.path.join(folder, "keys", "b%04d.key" % i)
            key = inventory.write_key(key_file)
            self.devices.append(inventory.Device(
                id="b%04d" % i, kind="fill", addr=0x200000 + i, key_file=key_file, key=key,
                key_file_as_written=key_file))
        self.path = os.path.join(folder, "inventory.toml")
        inventory.save(self.path, tuple(self.devices))
        self.keys = [frame.Keys(d.key) for d in self.devices]
        self.next = [0] * devices
        self.body = schema.encode(schema.FILL, FILL)

    def frames(self, n):
        """n (key, frame) pairs, round robin over the devices, counters going up."""
        out = []
        for j in range(n):
            i = j % len(self.devices)
            d, fcnt = self.devices[i], self.next[i]
            self.next[i] += 1
            out.append(("%s:%d:0" % (d.id, fcnt),
                        frame.seal(self.keys[i], schema.FILL, d.addr, fcnt, self.body)))
        return out


def send_windowed(frames, target, window):
    """Send as fast as answers allow, with at most `window` frames unanswered."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    outstanding = 0
    for _, data in frames:
        while outstanding >= window:
            try:
                sock.recv(512)
                outstanding -= 1
            except socket.timeout:
                outstanding = 0  # an answer was lost: do not stall the bench on it
        sock.sendto(data, target)
        outstanding += 1
    sock.close()


def send_paced(frames, target, rate):
    """Send at a steady rate; returns {key: send time}."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sent = {}
    start = time.perf_counter()
    for j, (key, data) in enumerate(frames):
        due = start + j / rate
        while True:
            now = time.perf_counter()
            if now >= due:
                break
            time.sleep(min(due - now, 0.001))
        sent[key] = time.perf_counter()
        sock.sendto(data, target)
    sock.close()
    return sent


def cpu_s(pid):
    """CPU time (user + system) a process has used so far, in seconds."""
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- the bare relay -------------------------------------------------------------------------

async def relay_main(udp_port, broker_port, window):
    import aiomqtt
    queue = asyncio.Queue()

    class Proto(asyncio.DatagramProtocol):
        def connection_made(self, t):
            self.t = t

        def datagram_received(self, data, addr):
            self.t.sendto(b"\x01", addr)
            queue.put_nowait(data)

    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", udp_port))
    async with aiomqtt.Client("127.0.0.1", broker_port, protocol=aiomqtt.ProtocolVersion.V5,
                              max_inflight_messages=window) as client:
        client.pending_calls_threshold = 1 << 30
        print("relay ready", flush=True)
        while True:
            batch = [await queue.get()]
            while len(batch) < window and not queue.empty():
                batch.append(queue.get_nowait())
            # The key as payload: the relay knows nothing of frames.
            await asyncio.gather(*(client.publish("relay", _relay_key(d), qos=1) for d in batch))


def _relay_key(data):
    hdr = frame.parse_header(data)
    return "r%06x:%d" % (hdr.addr, hdr.fcnt_low)


# -- runs -----------------------------------------------------------------------------------

def start_gateway(folder, fleet, broker, udp_port, batch):
    cfg = os.path.join(folder, "gateway.toml")
    open(cfg, "w").write(
        '[gateway]\nid = "bench"\ninventory = "%s"\nlog_level = "error"\n'
        '[ingress.udp]\nport = %d\nqueue_max = 100000\n[http]\nenabled = false\n'
        '[store]\npath = "%s"\n[mqtt]\nenabled = %s\nport = %d\nbatch = %d\n'
        % (fleet.path, udp_port, os.path.join(folder, "var", "gw.sqlite"),
           "true" if broker else "false", broker.port if broker else 1883, batch))
    proc = subprocess.Popen(pinned([sys.executable, "-m", "gateway", "--config", cfg]), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(folder, "gw.log"), "w"))

    def bound():  # the gateway holds the port once binding it here fails
        if proc.poll() is not None:
            raise SystemExit("bench: the gateway exited: %s"
                             % open(os.path.join(folder, "gw.log")).read()[-2000:])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", udp_port))
                return False
            except OSError:
                return True
    wait_for(bound, 30, "the gateway's UDP port")
    time.sleep(0.2)  # and its forwarder's connection
    return proc


def wait_delivered(sub, n, quiet_s=10):
    """Wait until n keys arrived, or none arrived for quiet_s (a frame lost on the way:
    UDP is not flow-controlled); returns the time of the last arrival."""
    last_count, last_change = -1, time.monotonic()
    while True:
        count = sub.count()
        if count >= n:
            break
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > quiet_s:
            break
        time.sleep(0.02)
    with sub.lock:
        return max(sub.arrived.values(), default=time.perf_counter())


def throughput(frames, target, sub, window, n):
    """(frames/s delivered, frames delivered)."""
    sub.reset()
    start = time.perf_counter()
    send_windowed(frames, target, window)
    end = wait_delivered(sub, n)
    delivered = sub.count()
    return delivered / (end - start), delivered


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def start_relay(broker, window):
    port = free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen(pinned([sys.executable, "-m", "bench.gateway", "--relay", str(port),
                                    str(broker.port), str(window)]),
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()
    return proc, ("127.0.0.1", port)


def run_throughput(args, console, folder, broker, sub, fleet, procs):
    """Relay and gateway in turn, args.rounds times: the machine's load changes from minute
    to minute, so each round's ratio compares runs made side by side."""
    relay, relay_at = start_relay(broker, args.window)
    procs.append(relay)
    udp_port = free_port(socket.SOCK_DGRAM)
    gw = start_gateway(folder, fleet, broker, udp_port, args.window)
    procs.append(gw)
    gw_at = ("127.0.0.1", udp_port)
    t = Table(title="UDP ingress -> Mosquitto (QoS 1), %d frames a run, one core, window %d"
              % (args.frames, args.window))
    for col in ("round", "relay frames/s", "gateway frames/s", "gateway vs relay",
                "relay CPU µs/frame", "gateway CPU µs/frame", "vs relay (CPU)",
                "lost (relay / gateway)"):
        t.add_column(col, justify="right")
    ratios, cpu_ratios = [], []
    for r in range(args.rounds):
        c0 = cpu_s(relay.pid)
        relay_rate, relay_n = throughput(fleet.frames(args.frames), relay_at, sub, args.window,
                                         args.frames)
        relay_us = (cpu_s(relay.pid) - c0) / max(relay_n, 1) * 1e6
        c0 = cpu_s(gw.pid)
        gw_rate, gw_n = throughput(fleet.frames(args.frames), gw_at, sub, args.window,
                                   args.frames)
        gw_us = (cpu_s(gw.pid) - c0) / max(gw_n, 1) * 1e6
        ratios.append(gw_rate / relay_rate)
        cpu_ratios.append(relay_us / gw_us)
        t.add_row("%d" % (r + 1), "%.0f" % relay_rate, "%.0f" % gw_rate,
                  "%.0f %%" % (100 * ratios[-1]), "%.0f" % relay_us, "%.0f" % gw_us,
                  "%.0f %%" % (100 * cpu_ratios[-1]),
                  "%d / %d" % (args.frames - relay_n, args.frames - gw_n))
    relay.terminate()
    relay.wait()
    console.print(t)
    console.print("gateway / relay, median of %d rounds: %.0f %% of its rate; %.0f %% by CPU "
                  "time per frame (the rate each would reach with a core of its own)"
                  % (len(ratios), 100 * statistics.median(ratios),
                     100 * statistics.median(cpu_ratios)))

    # Latency at a steady rate, through the same gateway.
    sub.reset()
    n = int(args.rate * args.seconds)
    sent = send_paced(fleet.frames(n), gw_at, args.rate)
    wait_delivered(sub, n)
    with sub.lock:
        lat = [(sub.arrived[k] - t0) * 1000 for k, t0 in sent.items() if k in sub.arrived]
    achieved = n / (max(sent.values()) - min(sent.values()))
    t = Table(title="Latency, frame sent -> delivered by the broker, %d frames at %d/s "
              "(sent at %.0f/s)" % (n, args.rate, achieved))
    for col in ("p50 ms", "p99 ms", "max ms", "delivered"):
        t.add_column(col, justify="right")
    delivered = len(lat)
    lat = lat or [float("nan")]
    t.add_row("%.1f" % percentile(lat, 50), "%.1f" % percentile(lat, 99), "%.1f" % max(lat),
              "%d / %d" % (delivered, n))
    console.print(t)
    t = Table(title="Gateway resident memory")
    t.add_column("frames through the gateway", justify="right")
    t.add_column("RSS MB", justify="right")
    t.add_row("%d" % (args.rounds * args.frames + n), "%.1f" % rss_mb(gw.pid))
    console.print(t)
    gw.terminate()
    gw.wait()


def run_memory(args, console, folder, broker, sub, fleet, procs):
    """Feed args.memory frames through one gateway, reading its VmRSS along the way."""
    udp_port = free_port(socket.SOCK_DGRAM)
    gw = start_gateway(folder, fleet, broker, udp_port, args.window)
    procs.append(gw)
    target = ("127.0.0.1", udp_port)
    step = max(1, args.memory // 10)
    t = Table(title="Gateway resident memory, %d devices, %s"
              % (len(fleet.devices), "MQTT forwarder to Mosquitto" if broker
                 else "local only (no forwarder)"))
    for col in ("frames", "RSS MB", "elapsed s", "frames/s (last step)"):
        t.add_column(col, justify="right")
    t.add_row("0", "%.1f" % rss_mb(gw.pid), "0", "")
    begin = time.perf_counter()
    done = 0
    while done < args.memory:
        n = min(step, args.memory - done)
        t0 = time.perf_counter()
        send_windowed(fleet.frames(n), target, args.window)
        done += n
        if sub is not None:
            wait_delivered(sub, done)
        t.add_row("%d" % done, "%.1f" % rss_mb(gw.pid), "%.0f" % (time.perf_counter() - begin),
                  "%.0f" % (n / (time.perf_counter() - t0)))
    gw.terminate()
    gw.wait()
    console.print(t)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=100000,
                    help="frames for each throughput run (default 100,000)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="relay and gateway runs, in turn (default 2)")
    ap.add_argument("--rate", type=int, default=1000, help="frames/s for the latency run")
    ap.add_argument("--seconds", type=float, default=5, help="length of the latency run")
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--window", type=int, default=100, help="unanswered frames at most")
    ap.add_argument("--memory", type=int, metavar="N",
                    help="instead: feed N frames through the gateway and print its resident "
                    "memory at every tenth")
    ap.add_argument("--local", action="store_true",
                    help="with --memory: no MQTT forwarder (readings kept locally)")
    args = ap.parse_args(argv)
    console = Console(width=150)
    folder = tempfile.mkdtemp(prefix="cityedge-bench-")
    broker = sub = None
    procs = []
    try:
        if not (args.memory and args.local):
            broker = Broker(folder)
            sub = Subscriber(broker.port)
        fleet = Fleet(folder, args.devices)
        if args.memory:
            run_memory(args, console, folder, broker, sub, fleet, procs)
        else:
            run_throughput(args, console, folder, broker, sub, fleet, procs)
    finally:
        for p in procs:  # also when a run failed or timed out
            if p.poll() is None:
                p.terminate()
                p.wait(20)
        if sub:
            sub.close()
        if broker:
            broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--relay":
        asyncio.run(relay_main(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
    else:
        main()
