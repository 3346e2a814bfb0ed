# Bridge mode: an ESP32 with an SX127x that relays every LoRa packet it hears to the USB
# serial console and transmits the downlinks the host gives it, at the time it names.
# The line protocol is in firmware/README.md ("LoRa serial bridge protocol") and in
# net/bridgeline.py. A board runs this instead of the node cycle when its flash holds
# bridge.json (its config: a "lora" section as a node's, the first channel is listened on).
import json
import select
import sys
import time


from net import bridgeline as line
from net.eu868 import time_on_air_ms
from net.lora import TX_SLACK_MS, make_radio
from net.radio import RX_CRC_ERROR, RX_DONE

_PREPARE_US = 50000         # the radio is set up for a downlink this long before its time
_EARLIEST_US = 2000         # a downlink due sooner than this is refused (too_late)
_LATEST_US = 10000000       # ... and one further ahead than this (too_early)
# Between passes of the main loop: the packet's time comes from the DIO0 interrupt, so the
# loop only needs to be quick enough to keep up with the console (115 bytes in 10 ms at
# 115200 baud, well within the console's receive buffer).
_IDLE_MS = 5


def log(*args):
    print("#", *args)


class Clock32:
    """The bridge's 32-bit microsecond clock (tmst_us), carried on from time.ticks_us,
    which wraps much sooner on an ESP32 (2^30 us). tick() must run at least every few
    minutes; the main loop runs it every pass."""

    def __init__(self):
        self._last = time.ticks_us()
        self._now = 0

    def tick(self):
        t = time.ticks_us()
        self._now = (self._now + time.ticks_diff(t, self._last)) & line.TMST_MASK
        self._last = t
        return self._now

    def at(self, ticks_us):
        """The 32-bit time of a recent time.ticks_us reading."""
        return (self._now + time.ticks_diff(ticks_us, self._last)) & line.TMST_MASK


class Bridge:
    def __init__(self, lora, radio, out=print):
        self.radio = radio
        self.out = out
        self.clock = Clock32()
        self.rx = (lora["channels"][0], lora["sf"], lora["bw_hz"], lora["cr"])
        self.pending = None     # the downlink waiting for its time
        self._text = []

    def listen(self):
        f, sf, bw, cr = self.rx
        self.radio.configure(freq_hz=f, sf=sf, bw_hz=bw, cr=cr, invert_iq=False)
        self.radio.start_recv()

    def ready(self):
        f, sf, bw, cr = self.rx
        self.out(line.ready(self.radio.chip, f, sf, bw, cr))

    def host_line(self, text):
        """Act on one line from the host."""
        try:
            kind, dn = line.parse(text)
        except line.LineError as e:
            self.out(e.line())
            return
        now = self.clock.tick()
        if kind == "PING":
            self.out(line.pong(now))
            return
        if self.pending is not None:
            self.out("ERR busy")
            return
        if dn["tmst"] is None:
            dn["tmst"] = (now + _PREPARE_US) & line.TMST_MASK
        ahead = line.ahead_us(dn["tmst"], now)
        if ahead < _EARLIEST_US:
            self.out("ERR too_late %d" % ahead)
        elif ahead > _LATEST_US:
            self.out("ERR too_early %d" % ahead)
        else:
            self.pending = dn

    def radio_event(self):
        radio = self.radio
        event = radio.poll()
        if event == RX_DONE or event == RX_CRC_ERROR:
            payload, rssi, snr, ticks = radio.packet
            f, sf, bw, cr = self.rx
            tmst = self.clock.at(ticks)
            if event == RX_DONE:
                self.out(line.up(tmst, f, sf, bw, cr, rssi, snr, payload))
            else:
                self.out(line.crc(tmst, f, sf, bw, cr, rssi, snr))

    def due(self):
        """Transmit the pending downlink if its time has come (or nearly: the last few
        milliseconds are waited out here, so it starts on time)."""
        dn = self.pending
        if dn is None:
            return
        ahead = line.ahead_us(dn["tmst"], self.clock.tick())
        if ahead > _PREPARE_US:
            return
        self.pending = None
        radio = self.radio
        try:
            radio.configure(freq_hz=dn["freq_hz"], sf=dn["sf"], bw_hz=dn["bw_hz"], cr=dn["cr"],
                            power_dbm=dn["power"], invert_iq=True)
            radio.load(dn["payload"])
            ahead = line.ahead_us(dn["tmst"], self.clock.tick())
            if ahead > 0:
                time.sleep_us(ahead)
            start = self.clock.tick()
            toa = time_on_air_ms(len(dn["payload"]), dn["sf"], dn["bw_hz"], dn["cr"],
                                 radio.preamble)
            radio.send(None, int(toa) + TX_SLACK_MS, toa)
            self.out(line.ok(start))
        except OSError as e:
            self.out("ERR tx_timeout %s" % e)
        finally:
            self.listen()

    def step(self):
        self.clock.tick()
        self.radio_event()
        self.due()


def _read_lines(poller, text):
    """Whole lines waiting on the console, without blocking."""
    lines = []
    while poller.poll(0):
        ch = sys.stdin.read(1)
        if not ch:
            break
        if ch == "\n":
            lines.append("".join(text).strip())
            text.clear()
        elif len(text) <= line.MAX_LINE:
            text.append(ch)
    return lines


def main(path="bridge.json"):
    from node.config import ConfigError, lora_section
    try:
        with open(path) as f:
            cfg = json.loads(f.read())
        lora = lora_section(cfg.get("lora") if isinstance(cfg, dict) else None, path)
    except (OSError, ValueError, ConfigError) as e:
        log("bridge config error:", e)
        return
    try:
        radio = make_radio(lora)
    except (OSError, ValueError) as e:  # no chip answers; a chip or pin the config got wrong
        log("bridge: no radio:", e)
        return
    bridge = Bridge(lora, radio)
    bridge.listen()
    bridge.ready()
    poller = select.poll()
    poller.register(sys.stdin, select.POLLIN)
    text = []
    while True:
        bridge.step()
        for received in _read_lines(poller, text):
            if received:
                bridge.host_line(received)
        time.sleep_ms(_IDLE_MS)
