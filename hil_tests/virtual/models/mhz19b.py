"""Winsen MH-Z19B NDIR CO2 module on a UART, from its user manual (version 1.0):

- 9600 baud 8N1: a byte takes 1.04 ms on the wire, a 9-byte frame 9.4 ms.
- Frames: FF 01 cmd b3..b7 checksum in, FF cmd b2..b7 checksum out; checksum = (negated
  sum of bytes 1..7) + 1. A frame with a wrong checksum is ignored (no answer).
- 0x86 read CO2: answers FF 86 HIGH LOW .. .. .. .. CS, ppm = HIGH * 256 + LOW.
- 0x87 zero point calibration: the current air becomes 400 ppm. No answer.
- 0x88 span calibration, 0x79 ABC on (byte 3 0xA0) / off (0x00), 0x99 detection range
  (32-bit in bytes 4..7; 2000, 5000 or 10000 ppm): no answer.
- ABC (on by default): every 24 h of operation the lowest reading is taken as 400 ppm.
- Response time T90 < 120 s: the optics follow the air as a first-order lag (tau = 52 s).
- Accuracy +-(50 ppm + 5 % of the reading): `calibration_error_ppm` is this unit's offset,
  `noise_ppm` its scatter.

Faults: "nack"/"no_answer" (the module never answers), "crc" (answers with a wrong
checksum), "stuck" (the host never answers: the UART driver hangs), "stuck_value" (the
same ppm forever), "out_of_range" (0xFFFF ppm), "garbage" (an answer shifted by a byte).
"""
import math
import random

from hil_tests.virtual.models import Model

BYTE_US = 1042            # 10 bits at 9600 baud
FRAME_US = 9 * BYTE_US
PROCESS_US = 5000         # the module's turnaround before it answers (not in the manual)
TAU_US = 52 * 1000000     # T90 120 s = 2.3 time constants
ABC_US = 24 * 3600 * 1000000


def checksum(frame):
    return (0xFF - (sum(frame[1:8]) & 0xFF) + 1) & 0xFF


def _value(v, vt):
    return v(vt) if callable(v) else v


class MHZ19B(Model):
    def __init__(self, uart="uart2", co2_ppm=420.0, calibration_error_ppm=0.0, noise_ppm=8.0,
                 detection_range=5000, seed=2):
        self.uart = uart
        self.co2_ppm = co2_ppm
        self.cal_offset = calibration_error_ppm
        self.noise_ppm = noise_ppm
        self.range = detection_range
        self.abc = True
        self.rng = random.Random(seed)
        self._rx = bytearray()            # bytes received from the host, not yet a frame
        self._tx = []                     # (vt when the byte has arrived at the host, byte)
        self._seen_vt = None              # the optics' state: lagged ppm at this time
        self._seen = None
        self._abc_start = None
        self._abc_min = None
        self.frozen = None
        self.commands = []                # (vt, command byte, data bytes)
        self.readings = []                # (vt, true ppm, reported ppm)

    def bus_keys(self):
        return [("uart", self.uart)]

    # ------------------------------------------------------------ the gas and the optics

    def _optics(self, vt):
        """The lagged ppm the cell sees at vt, integrated in steps from the last look."""
        if self._seen_vt is None:
            self._seen_vt, self._seen = vt, _value(self.co2_ppm, vt)
        t = self._seen_vt
        while t < vt:
            step = min(10 * 1000000, vt - t)
            t += step
            self._seen += (_value(self.co2_ppm, t) - self._seen) * (1 - math.exp(-step / TAU_US))
        self._seen_vt = vt
        return self._seen

    def _raw(self, vt):
        raw = self._optics(vt) + self.cal_offset
        if self.abc:
            if self._abc_start is None:
                self._abc_start, self._abc_min = vt, raw
            self._abc_min = min(self._abc_min, raw)
            if vt - self._abc_start >= ABC_US:
                self.cal_offset += 400 - self._abc_min
                raw += 400 - self._abc_min
                self._abc_start, self._abc_min = vt, raw
        return raw

    def _reading(self, vt):
        ppm = int(round(self._raw(vt) + self.rng.gauss(0, self.noise_ppm / 2)))
        ppm = max(0, min(self.range, ppm))
        if self.fault == "stuck_value":
            if self.frozen is None:
                self.frozen = self.readings[-1][2] if self.readings else ppm
            ppm = self.frozen
        else:
            self.frozen = None
        if self.fault == "out_of_range":
            ppm = 0xFFFF
        self.readings.append((vt, _value(self.co2_ppm, vt), ppm))
        return ppm

    # ------------------------------------------------------------ the UART

    def write(self, data, vt):
        for i, byte in enumerate(data):
            self._rx.append(byte)
            if len(self._rx) == 1 and byte != 0xFF:
                self._rx.clear()  # not a start byte: wait for one
            if len(self._rx) == 9:
                frame, self._rx = bytes(self._rx), bytearray()
                self._execute(frame, vt + (i + 1) * BYTE_US)

    def _execute(self, frame, vt):
        if frame[1] != 0x01 or checksum(frame) != frame[8]:
            return  # a corrupt command is ignored
        command = frame[2]
        self.commands.append((vt, command, frame[3:8]))
        if command == 0x86:
            ppm = self._reading(vt)
            out = bytearray([0xFF, 0x86, (ppm >> 8) & 0xFF, ppm & 0xFF, 0x40, 0, 0, 0, 0])
            out[8] = checksum(out)
            if self.fault == "crc":
                out[8] ^= 0x21
            if self.fault == "garbage":
                out = out[1:] + b"\xff"
            if self.fault in ("nack", "no_answer"):
                return
            start = vt + PROCESS_US
            for i, byte in enumerate(out):
                self._tx.append((start + (i + 1) * BYTE_US, byte))
        elif command == 0x87:
            self.cal_offset += 400 - self._raw(vt)
        elif command == 0x79:
            self.abc = frame[3] == 0xA0
            self._abc_start = None
        elif command == 0x99:
            value = int.from_bytes(frame[4:8], "big")
            if value in (2000, 5000, 10000):
                self.range = value
        # 0x88 (span) is recorded in self.commands; the model's gain is ideal

    def pending(self, vt):
        return sum(1 for t, _ in self._tx if t <= vt)

    def read(self, n, timeout_ms, vt):
        """Up to n bytes (n < 0: what has arrived), waiting up to timeout_ms for them."""
        if n is None or n < 0:
            ready = [b for t, b in self._tx if t <= vt]
            self._tx = [(t, b) for t, b in self._tx if t > vt]
            return bytes(ready), 0
        deadline = vt + timeout_ms * 1000
        want = self._tx[:n]
        arrived = [(t, b) for t, b in want if t <= deadline]
        if len(arrived) < n:
            # the UART returns what came before its timeout
            self._tx = self._tx[len(arrived):]
            waited = deadline - vt if timeout_ms else 0
            return bytes(b for _, b in arrived), waited
        self._tx = self._tx[n:]
        return bytes(b for _, b in arrived), max(0, arrived[-1][0] - vt)
