# A Wi-Fi sensor node simulated on CPython with protocol/: seals uplinks, sends them to the
# gateway's UDP port from its own socket, and listens there for the receipt and command
# downlinks, as the firmware does in its reply window. Reusable by any gateway test.
import socket
import time

from protocol import command, counters, frame, schema


class Downlink:
    def __init__(self, kind, fcnt, message):
        self.kind = kind
        self.fcnt = fcnt
        self.message = message

    def __repr__(self):
        return "Downlink(%s, fcnt=%d, %r)" % (schema.kind_name(self.kind), self.fcnt, self.message)


class WifiNode:
    def __init__(self, *, addr, key, gateway, fcnt=0, reply_window_s=2.0):
        self.addr = addr
        self.keys = frame.Keys(key)
        self.gateway = gateway
        self.fcnt = fcnt  # the next uplink counter
        self.reply_window_s = reply_window_s
        self.down_window = counters.ReplayWindow()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.receipts = []  # uplink counters the gateway confirmed
        self.commands = []  # commands received, in order
        self.bad_downlinks = []

    def close(self):
        self.sock.close()

    # -- building frames ---------------------------------------------------------------------

    def seal(self, kind, body, fcnt=None):
        """An uplink frame with the next counter (or the one given)."""
        if fcnt is None:
            fcnt = self.fcnt
            self.fcnt += 1
        return frame.seal(self.keys, kind, self.addr, fcnt, body)

    def reading(self, kind, values, fcnt=None):
        return self.seal(kind, schema.encode(kind, values), fcnt)

    def ack(self, command_id, result=command.ACK_OK):
        return self.reading(schema.ACK, {"command_id": command_id, "result": result})

    # -- talking to the gateway ----------------------------------------------------------------

    def send(self, data):
        self.sock.sendto(data, self.gateway)

    def receive(self, timeout):
        """Downlinks of one reply window: the receipt and as many commands as it announces
        (or what arrived within timeout seconds)."""
        got = []
        expected = None
        deadline = time.monotonic() + timeout
        while expected is None or expected > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(512)
            except socket.timeout:
                return got
            d = self._open(data)
            if d is None:
                continue
            got.append(d)
            if d.kind == schema.RECEIPT:
                self.receipts.append(d.message["fcnt"])
                expected = d.message.get("commands") or 0
            elif d.kind == schema.COMMAND:
                self.commands.append(d.message)
                if expected is not None:
                    expected -= 1
        return got

    def exchange(self, data, *, tries=5, timeout=None):
        """Send an uplink until its receipt arrives (the firmware's flash queue does the
        same); returns the downlinks of the successful try, or None."""
        hdr = frame.parse_header(data)
        for _ in range(tries):
            self.send(data)
            got = self.receive(timeout or self.reply_window_s)
            if any(d.kind == schema.RECEIPT and d.message["fcnt"] & 0xFFFF == hdr.fcnt_low
                   for d in got):
                return got
        return None

    def _open(self, data):
        try:
            hdr = frame.parse_header(data)
            if hdr.direction != frame.DOWN or hdr.addr != self.addr:
                raise ValueError("not a downlink for this node")
            fcnt = counters.full_counter(self.down_window.newest, hdr.fcnt_low)
            self.down_window.check(fcnt)
            body = frame.unseal(self.keys, data, fcnt)
            message = schema.decode(hdr.kind, body)
            self.down_window.accept(fcnt)
            return Downlink(hdr.kind, fcnt, message)
        except ValueError as e:
            self.bad_downlinks.append((data, str(e)))
            return None


FILL = {"level_pct": 42.5, "distance_mm": 812, "temperature_c": 21.4, "hours_to_full": 40,
        "fault": 0}


def fill_reading(i):
    """A valid fill reading that differs with i."""
    return dict(FILL, level_pct=(i % 200) / 2, distance_mm=i % 10000)
