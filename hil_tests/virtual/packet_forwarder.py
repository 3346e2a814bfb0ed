"""The gateway end of the simulated air: a LoRa concentrator gateway running Semtech's UDP
packet forwarder, protocol version 2 (Lora-net/packet_forwarder, PROTOCOL.TXT).

Datagrams (bytes 1-2 a random token):
  PUSH_DATA  [2][token][0x00][gateway EUI, 8 bytes]{"rxpk":[...]}   gateway -> server
  PUSH_ACK   [2][token][0x01]                                      server -> gateway
  PULL_DATA  [2][token][0x02][gateway EUI]                         gateway -> server, keepalive
  PULL_ACK   [2][token][0x04]                                      server -> gateway
  PULL_RESP  [2][token][0x03]{"txpk":{...}}                         server -> gateway
  TX_ACK     [2][token of the PULL_RESP][0x05][gateway EUI]{"txpk_ack":{"error":...}}

An rxpk carries `time` (UTC, ISO 8601, from the virtual clock), `tmst` (the concentrator's
32-bit µs counter at the end of the packet, "RX finished"), `chan`, `rfch`, `freq` (MHz),
`stat` (1 CRC good, -1 bad, 0 no CRC), `modu` "LORA", `datr` ("SF9BW125"), `codr` ("4/5"),
`rssi` (dBm), `lsnr` (dB), `size` and `data` (base64). The counter is the virtual time plus
a per-gateway offset, modulo 2**32.

A txpk is transmitted on the air at `tmst` (or at once with `imme`) with its `freq`, `powe`,
`datr`, `codr`, `ipol` (inverted IQ, what nodes listen for), `prea`, `ncrc`, `size`, `data`.
The TX_ACK says "NONE", or why not: "TOO_LATE" (its time has passed on the air: the
horizon is beyond it), "TOO_EARLY" (more than `max_advance_s` ahead), "COLLISION_PACKET"
(it overlaps a downlink already scheduled), "TX_FREQ" (outside 863-870 MHz). A `powe` above
`max_power_dbm` is sent at that power, with {"warn": "TX_POWER", "value": max}.

The forwarder decides the fate of each uplink at its position once the air's horizon has
passed the frame (see air.py) and pushes what it received. By default, as lora_pkt_fwd's
`forward_crc_error: false`, frames with a CRC error are not pushed. Several forwarders may
listen to one air: the server then sees one frame from several gateways.
"""
import base64
import json
import logging
import os
import socket
import threading
from datetime import datetime, timezone

from hil_tests.virtual.air import Listening, Modulation
from hil_tests.virtual.board import EPOCH
from hil_tests.virtual.models.sx127x import Frame

log = logging.getLogger("cityedge.virtual.packet_forwarder")

VERSION = 2
PUSH_DATA, PUSH_ACK, PULL_DATA, PULL_RESP, PULL_ACK, TX_ACK = 0, 1, 2, 3, 4, 5
# The board's wall clock starts at EPOCH seconds after 2000-01-01 (the ESP32 port's epoch).
UNIX_AT_VT0 = 946684800 + EPOCH
EU868_8_CHANNELS = (867100000, 867300000, 867500000, 867700000, 867900000,
                    868100000, 868300000, 868500000)
TX_BAND_HZ = (863000000, 870000000)
ANSWER_TOLERANCE_US = 2000


def parse_datr(datr):
    """"SF9BW125" -> (9, 125)."""
    if not isinstance(datr, str) or not datr.startswith("SF") or "BW" not in datr:
        raise ValueError("datr %r is not like SF9BW125" % (datr,))
    sf, bw = datr[2:].split("BW")
    return int(sf), float(bw) if "." in bw else int(bw)


def parse_codr(codr):
    """"4/5" .. "4/8" -> 1..4."""
    if codr not in ("4/5", "4/6", "4/7", "4/8"):
        raise ValueError("codr %r is not 4/5..4/8" % (codr,))
    return int(codr[2]) - 4


class PacketForwarder:
    def __init__(self, air, server, *, eui, position=(0.0, 0.0), channels_hz=EU868_8_CHANNELS,
                 sfs=range(7, 13), bw_khz=125, sync_word=0x12, tmst_offset_us=0,
                 keepalive_s=5.0, max_power_dbm=27, max_advance_s=30.0,
                 forward_crc_error=False, rx_delays_s=(1.0, 2.0)):
        self.air = air
        self.server = server
        self.eui = bytes.fromhex(eui) if isinstance(eui, str) else bytes(eui)
        if len(self.eui) != 8:
            raise ValueError("a gateway EUI is 8 bytes, got %r" % (eui,))
        self.label = "gw-" + self.eui.hex()
        self.name = self.label
        self.position = position
        self.channels_hz = tuple(channels_hz)
        self.listening = Listening(self.channels_hz, tuple(sfs), bw_khz, False, sync_word)
        self.sync_word = sync_word
        self.tmst_offset_us = tmst_offset_us
        self.keepalive_s = keepalive_s
        self.max_power_dbm = max_power_dbm
        self.max_advance_us = int(max_advance_s * 1e6)
        self.forward_crc_error = forward_crc_error
        # A downlink starting this long after an uplink ended answers it (the nodes' receive
        # delays): then the node's receive window need not wait for the network any longer.
        self.rx_delays_us = tuple(round(d * 1e6) for d in rx_delays_s)
        self.sent = []            # downlink Frames put on the air
        self.pushed = []          # (token, rxpk) of every PUSH_DATA's packets
        self.push_acks = set()
        self.pull_acks = 0
        self.tx_acks = []         # (token, txpk_ack dict)
        self.errors = []          # datagrams from the server it could not use, and why
        self._done = set()        # ids of frames whose fate this gateway decided
        self._last_end = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self._threads = []

    # ------------------------------------------------------------ life

    def start(self):
        self.air.add_gateway(self)
        self._pull()
        for target in (self._receive, self._forward, self._keepalive):
            thread = threading.Thread(target=target, daemon=True, name=self.label)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self):
        self._stop.set()
        self.air.remove_gateway(self)
        for thread in self._threads:
            thread.join(2)
        self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def transmissions(self):
        return self.sent

    def tmst(self, vt):
        return int(vt + self.tmst_offset_us) & 0xFFFFFFFF

    def vt_of(self, tmst, near):
        """The virtual time whose counter value is tmst, the one nearest `near`."""
        here = self.tmst(near)
        delta = (tmst - here) & 0xFFFFFFFF
        if delta >= 1 << 31:
            delta -= 1 << 32
        return near + delta

    # ------------------------------------------------------------ uplinks

    def _forward(self):
        seen, waiting = 0, []  # air.frames looked at so far; those of them not yet ended
        while not self._stop.is_set():
            horizon = self.air.horizon()
            with self.air._lock:
                waiting += [f for f in self.air.frames[seen:] if f.radio is not self]
                seen = len(self.air.frames)
            ready = [f for f in waiting if f.end <= horizon]
            waiting = [f for f in waiting if f.end > horizon]
            rxpks, heard = [], []
            for frame in sorted(ready, key=lambda f: f.end):
                self._done.add(frame.id)  # a frame of the air's joins no second PUSH_DATA
                if frame.iq_inverted or not self.listening.hears(frame):
                    self.air.gateway_decided(frame, self, False)
                    continue
                fate = self.air.fate(frame, self, wait=False)
                if fate.status == "delivered" or (fate.status == "corrupt"
                                                  and self.forward_crc_error):
                    rxpks.append(self.rxpk(frame, fate))
                    heard.append(frame)
                    self._last_end = max(self._last_end, frame.end)
                else:
                    self.air.gateway_decided(frame, self, False)
            if rxpks:
                self._push(rxpks)
                for frame in heard:
                    self.air.gateway_decided(frame, self, True)
            self._stop.wait(0.002)

    def rxpk(self, frame, fate):
        chan = min(range(len(self.channels_hz)),
                   key=lambda i: abs(self.channels_hz[i] - frame.freq_hz))
        stamp = datetime.fromtimestamp(UNIX_AT_VT0 + frame.end / 1e6, timezone.utc)
        bw = frame.bw_khz if frame.bw_khz != int(frame.bw_khz) else int(frame.bw_khz)
        payload = frame.payload
        if fate.status == "corrupt":
            payload = bytes(b ^ 0x5A if i % 3 == 0 else b for i, b in enumerate(payload))
        return {"time": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "tmst": self.tmst(frame.end), "chan": chan, "rfch": 0,
                "freq": round(frame.freq_hz / 1e6, 6),
                "stat": (-1 if fate.status == "corrupt" else 1) if frame.crc else 0,
                "modu": "LORA", "datr": "SF%dBW%s" % (frame.sf, bw),
                "codr": "4/%d" % (frame.cr + 4), "rssi": round(fate.rssi),
                "lsnr": round(fate.snr, 1), "size": len(payload),
                "data": base64.b64encode(payload).decode()}

    def _push(self, rxpks):
        token = os.urandom(2)
        body = json.dumps({"rxpk": rxpks}, separators=(",", ":")).encode()
        with self._lock:
            self.pushed.extend((token, r) for r in rxpks)
        self.sock.sendto(bytes([VERSION]) + token + bytes([PUSH_DATA]) + self.eui + body,
                         self.server)

    # ------------------------------------------------------------ the server's datagrams

    def _pull(self):
        self.sock.sendto(bytes([VERSION]) + os.urandom(2) + bytes([PULL_DATA]) + self.eui,
                         self.server)

    def _keepalive(self):
        while not self._stop.wait(self.keepalive_s):
            self._pull()

    def _receive(self):
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 4 or data[0] != VERSION:
                self.errors.append(("bad header", data[:12]))
                continue
            token, kind = data[1:3], data[3]
            if kind == PUSH_ACK:
                self.push_acks.add(token)
            elif kind == PULL_ACK:
                self.pull_acks += 1
            elif kind == PULL_RESP:
                self._downlink(token, data[4:])
            else:
                self.errors.append(("unexpected identifier %d" % kind, data[:12]))

    def _sending_during(self, frame):
        with self.air._lock:
            return any(o.radio is self for o in self.air.overlapping(frame.start, frame.end))

    def _downlink(self, token, body):
        try:
            txpk = json.loads(body)["txpk"]
            sf, bw = parse_datr(txpk["datr"])
            payload = base64.b64decode(txpk["data"], validate=True)
            modulation = Modulation(round(float(txpk["freq"]) * 1e6), sf, bw,
                                    parse_codr(txpk["codr"]),
                                    power_dbm=min(float(txpk.get("powe", 14)),
                                                  self.max_power_dbm),
                                    preamble=int(txpk.get("prea", 8)),
                                    crc=not txpk.get("ncrc", False),
                                    iq_inverted=bool(txpk.get("ipol", False)),
                                    sync_word=self.sync_word)
            if "size" in txpk and txpk["size"] != len(payload):
                raise ValueError("size %r but %d bytes of data" % (txpk["size"], len(payload)))
        except (ValueError, KeyError, TypeError) as e:
            # PROTOCOL.TXT has no error code for an unreadable txpk: the packet forwarder
            # logs it and sends nothing back.
            self.errors.append(("bad PULL_RESP: %s" % e, body[:80]))
            log.warning("%s: PULL_RESP dropped: %s", self.label, e)
            return
        horizon = self.air.horizon()
        now = max(self._last_end, horizon if horizon != float("inf") else 0)
        start = now if txpk.get("imme") else self.vt_of(int(txpk["tmst"]), now)
        frame = Frame(self.label, payload, start, modulation, position=self.position)
        ack = {"error": "NONE"}
        if not TX_BAND_HZ[0] <= modulation.freq_hz <= TX_BAND_HZ[1]:
            ack = {"error": "TX_FREQ"}
        elif start < horizon:
            ack = {"error": "TOO_LATE"}
        elif start > now + self.max_advance_us:
            ack = {"error": "TOO_EARLY"}
        elif self._sending_during(frame):
            ack = {"error": "COLLISION_PACKET"}
        elif float(txpk.get("powe", 14)) > self.max_power_dbm:
            ack = {"warn": "TX_POWER", "value": self.max_power_dbm}
        if "error" not in ack or ack["error"] == "NONE":
            self.sent.append(frame)
            self.air.transmit(self, frame)
            with self.air._lock:
                # Uplinks that ended one receive delay before this downlink (they began
                # at most the longest frame earlier still).
                earliest = start - max(self.rx_delays_us) - ANSWER_TOLERANCE_US
                near = self.air.overlapping(earliest, start)
                answered = [f for f in near if not f.iq_inverted and f.id in self._done
                            and any(abs(start - f.end - d) <= ANSWER_TOLERANCE_US
                                    for d in self.rx_delays_us)]
            for uplink in answered:
                self.air.answered(uplink)
        self.tx_acks.append((token, ack))
        self.sock.sendto(bytes([VERSION]) + token + bytes([TX_ACK]) + self.eui
                         + json.dumps({"txpk_ack": ack}).encode(), self.server)
