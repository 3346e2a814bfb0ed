"""The host end of the LoRa serial bridge (firmware/node/bridge.py) for tests and benches
without the gateway service: it plays the gateway on a bridge board's serial port with the
line protocol of firmware/README.md."""
import threading
import time

import serial

from protocol import airtime, command, counters, frame, schema
from protocol.errors import ProtocolError


class BridgeHost:
    """The gateway's end of the serial bridge for one node, for tests and benches: reads UP
    lines from the bridge board's console, checks each frame as the gateway does (MIC,
    counter, replay), and answers with a receipt (and the commands it holds) in DN lines
    timed for the node's receive windows (firmware/README.md, "LoRa serial bridge
    protocol")."""

    def __init__(self, board, addr, key, rx_delay_ms=1000, rx2_freq_hz=None):
        """rx2_freq_hz: answer in RX2 on that channel, a second after RX1 (as a gateway out
        of RX1 airtime does), instead of in RX1."""
        self.board = board
        self.addr = addr
        self.delay_us = rx_delay_ms * 1000
        self.rx2_freq_hz = rx2_freq_hz
        self.keys = frame.Keys(key)
        self.window = counters.ReplayWindow()
        self.down_fcnt = 0
        self.commands = []          # (command_id, name, arg) to send down
        self.accepted = []          # (fcnt, kind name, message)
        self.confirmed = set()
        self.repeated = []          # counters heard again after their receipt was sent
        self.errors = []            # ERR lines, and uplinks that failed the gateway's checks
        self.oks = []               # tmst_us of each downlink the bridge sent
        self._queue = []            # (settings, frame) waiting for the previous one's OK
        self._last = b""            # the downlink last handed to the bridge
        self._seen = 0
        self._stop = False
        self._port = serial.Serial(board.port, 115200, timeout=0)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self):
        self._stop = True
        self._thread.join(5)
        self._port.close()

    def _serve(self):
        while not self._stop:
            lines = self.board.console[self._seen:]
            self._seen += len(lines)
            for text in lines:
                self._line(text.strip())
            time.sleep(0.001)

    def write(self, text):
        self._port.write((text + "\n").encode())

    def _line(self, text):
        fields = text.split()
        if not fields:
            return
        if fields[0] == "UP":
            self._uplink(fields)
        elif fields[0] == "OK":
            self.oks.append(int(fields[1]))
            if self._queue:
                # The node listens again rx_delay after the end of the previous downlink.
                settings, data = self._queue.pop(0)
                end = int(fields[1]) + self._airtime_us(self._last, settings)
                self._send_down(end + self.delay_us, settings, data)
        elif fields[0] == "ERR":
            self.errors.append(text)

    @staticmethod
    def _airtime_us(data, settings):
        freq, sf, bw, cr = settings
        return int(airtime.time_on_air_ms(len(data), int(sf), int(bw) / 1000,
                                          int(cr[2]) - 4, 8) * 1000)

    def _send_down(self, tmst, settings, data):
        freq, sf, bw, cr = settings
        self._last = data
        self.write("DN %d %s %s %s %s 14 %s" % (tmst & 0xFFFFFFFF, freq, sf, bw, cr, data.hex()))

    def _uplink(self, fields):
        tmst, settings, data = int(fields[1]), tuple(fields[2:6]), bytes.fromhex(fields[8])
        try:
            header = frame.parse_header(data)
            if header.addr != self.addr:
                raise ProtocolError("unknown device %06x" % header.addr)
            fcnt = counters.full_counter(self.window.newest, header.fcnt_low)
            message = schema.decode(header.kind, frame.unseal(self.keys, data, fcnt))
            if fcnt not in self.confirmed:
                self.window.check(fcnt)
        except ProtocolError as e:
            self.errors.append("uplink rejected: %s" % e)
            return
        if fcnt in self.confirmed:
            self.repeated.append(fcnt)  # its receipt was lost: confirm it again
        else:
            self.window.accept(fcnt)
            self.confirmed.add(fcnt)
            self.accepted.append((fcnt, schema.kind_name(header.kind), message))
        if header.kind == schema.ACK:
            self.commands = [c for c in self.commands if c[0] != message["command_id"]]
        pending = list(self.commands)
        receipt = schema.encode(schema.RECEIPT, {"fcnt": fcnt, "commands": len(pending)})
        start = tmst + self.delay_us
        if self.rx2_freq_hz:
            settings, start = (str(self.rx2_freq_hz),) + settings[1:], start + 1000000
        self._send_down(start, settings, self._seal(schema.RECEIPT, receipt))
        for command_id, name, arg in pending:
            body = command.encode(command_id, name, arg)
            self._queue.append((settings, self._seal(schema.COMMAND, body)))

    def _seal(self, kind, body):
        self.down_fcnt += 1
        return frame.seal(self.keys, kind, self.addr, self.down_fcnt, body, frame.DOWN)
