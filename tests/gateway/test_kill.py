# The gateway process killed with SIGKILL at random points of a stream and restarted:
# every reading it confirmed with a receipt reaches the broker.
import os
import random
import signal
import subprocess
import sys
import threading
import time

from protocol import schema

from tests.gateway.broker import Consumer, free_port, wait_until
from tests.gateway.harness import make_fleet
from tests.gateway.node import WifiNode, fill_reading

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class GatewayProcess:
    def __init__(self, config_path, log_path):
        self.config_path = config_path
        self.log_path = log_path
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        mark = "gateway_started"
        before = self._log().count(mark)
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "--config", self.config_path],
                                     cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, PYTHONPATH=ROOT))
        wait_until(lambda: self._log().count(mark) > before or self._dead(), 20, "gateway start")
        assert not self._dead(), self._log()[-3000:]

    def _dead(self):
        return self.proc.poll() is not None

    def _log(self):
        try:
            return open(self.log_path).read()
        except FileNotFoundError:
            return ""

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.log.close()


def test_sigkill_at_random_points_loses_nothing_accepted(tmp_path, broker):
    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    inv, devices = make_fleet(tmp_path / "fleet", n=2, kinds=("fill",))
    port = free_port()
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(
        '[gateway]\nid = "gw-kill"\ninventory = "%s"\n[ingress.udp]\nport = %d\n'
        '[http]\nenabled = false\n[store]\npath = "var/gw.sqlite"\nbatch_max = 32\n'
        '[mqtt]\nenabled = true\nport = %d\nbackoff_min_s = 0.05\nbackoff_max_s = 0.5\nbatch = 20\n'
        % (inv, port, broker.port))
    consumer = Consumer(broker.port)
    gw = GatewayProcess(str(cfg), str(tmp_path / "gateway.log"))
    gw.start()
    receipted = []
    done = threading.Event()

    def stream():
        nodes = [WifiNode(addr=d.addr, key=d.key, gateway=("127.0.0.1", port),
                          reply_window_s=0.3) for d in devices]
        for i in range(200):
            for node, dev in zip(nodes, devices):
                fcnt = node.fcnt
                data = node.reading(schema.FILL, fill_reading(i))
                # The node keeps the frame until its receipt arrives, however long.
                assert node.exchange(data, tries=200), "frame %d never confirmed" % fcnt
                receipted.append("%s:%d:0" % (dev.id, fcnt))
        done.set()

    streamer = threading.Thread(target=stream, daemon=True)
    streamer.start()
    # Kill points: after a random number of receipts, plus a random few milliseconds, so
    # that kills land anywhere in receiving, committing, answering and publishing.
    points = sorted(rnd.sample(range(10, 350), 6))
    kills = 0
    try:
        for point in points:
            wait_until(lambda: len(receipted) >= point or done.is_set(), 60, "progress")
            time.sleep(rnd.uniform(0, 0.02))
            gw.kill()
            kills += 1
            time.sleep(rnd.uniform(0, 0.2))
            gw.start()
        streamer.join(120)
        assert done.is_set(), "stream did not finish (seed %d)" % seed
        wait_until(lambda: set(consumer.keys()) >= set(receipted), 30,
                   "every receipted reading at the broker (seed %d)" % seed)
    finally:
        gw.stop()
        consumer.close()
    assert kills == 6, "the stream ended before every kill (seed %d)" % seed
    assert len(receipted) == 400
    assert set(consumer.keys()) == set(receipted)
