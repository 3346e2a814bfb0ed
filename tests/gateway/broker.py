# A real Mosquitto for the tests, on a free port, with persistence in a temporary folder so
# that a restart keeps the queued QoS 1 messages of persistent sessions; and an MQTT 5
# consumer (paho, its own thread) that stays subscribed across broker restarts.
import json
import os
import socket
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port(kind=socket.SOCK_STREAM):
    """A port on loopback that nothing listens on now (TCP, or UDP with SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what="condition", interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))


class Mosquitto:
    """users: {name: password} for a password_file (mosquitto_passwd) instead of anonymous
    access; tls: (cafile, certfile, keyfile) for a TLS listener; max_inflight: what its
    CONNACK gives MQTT 5 clients as Receive Maximum (0: no limit, none given)."""

    def __init__(self, folder, port=None, *, users=None, tls=None, max_inflight=0):
        self.folder = str(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.port = port or free_port()
        self.conf = os.path.join(self.folder, "mosquitto.conf")
        self.log = os.path.join(self.folder, "mosquitto.log")
        lines = ["listener %d 127.0.0.1" % self.port]
        if users:
            passwd = os.path.join(self.folder, "passwd")
            for i, (name, password) in enumerate(sorted(users.items())):
                subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else [])
                               + [passwd, name, password], check=True, capture_output=True)
            os.chmod(passwd, 0o600)
            lines += ["allow_anonymous false", "password_file %s" % passwd]
        else:
            lines.append("allow_anonymous true")
        if tls:
            cafile, certfile, keyfile = tls
            lines += ["cafile %s" % cafile, "certfile %s" % certfile, "keyfile %s" % keyfile,
                      "require_certificate false"]
        lines += ["persistence true", "persistence_location %s/" % self.folder,
                 "autosave_interval 1", "max_queued_messages 0",
                 "max_inflight_messages %d" % max_inflight,
                 "log_dest file %s" % self.log, "log_type error", "log_type warning"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to "mosquitto", who cannot write here
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("mosquitto exited: %s" % open(self.log).read()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        wait_until(up, 10, "mosquitto to listen")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its database on the way out
            self.proc.wait(10)
        self.proc = None


class Consumer:
    """Subscribes with QoS 1 and a persistent session; records every message with its
    idempotency key (the user property "key")."""

    def __init__(self, port, topic="cityedge/v1/#", client_id="test-consumer", *,
                 username=None, password=None, ca_file=None):
        self.messages = []
        self.content_types = []
        self.lock = threading.Lock()
        self.topic = topic
        self.subscribed = threading.Event()
        c = self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                      protocol=mqtt.MQTTv5)
        c.on_connect = self._connected
        c.on_message = self._message
        c.on_subscribe = lambda *a: self.subscribed.set()
        if username:
            c.username_pw_set(username, password)
        if ca_file:
            c.tls_set(ca_certs=ca_file)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        c.reconnect_delay_set(0.05, 0.5)
        c.connect_async("127.0.0.1", port, clean_start=False, properties=props)
        c.loop_start()
        if not self.subscribed.wait(10):
            raise AssertionError("consumer did not subscribe")

    def _connected(self, client, userdata, flags, reason, props):
        client.subscribe(self.topic, qos=1)

    def _message(self, client, userdata, msg):
        props = dict(getattr(msg.properties, "UserProperty", []) or [])
        with self.lock:
            self.messages.append((msg.topic, props.get("key"), json.loads(msg.payload)))
            self.content_types.append(getattr(msg.properties, "ContentType", None))

    def keys(self):
        with self.lock:
            return [m[1] for m in self.messages]

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()
