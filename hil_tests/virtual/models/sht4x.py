"""Sensirion SHT4x (SHT40 / SHT41 / SHT45) temperature and humidity sensor on I2C, from its
datasheet (version 6, February 2023).

Bus behaviour:
- Address 0x44 (-AD1B; 0x45 -BD1B, 0x46 -CD1B). One-byte commands: 0xFD / 0xF6 / 0xE0
  measure T and RH at high / medium / low repeatability (8.3 / 4.5 / 1.7 ms max),
  0x39 / 0x32, 0x2F / 0x24, 0x1E / 0x15 heat at 200 / 110 / 20 mW for 1 s / 0.1 s and then
  measure at high repeatability, 0x89 read the serial number, 0x94 soft reset (1 ms).
- While a command executes the chip does not acknowledge its address (NACK). The answer of
  a measurement or of the serial number is 6 bytes, two 16-bit words each followed by its
  CRC-8 (polynomial 0x31, init 0xFF); it can be read once. A read with no answer pending:
  NACK. An unknown command: NACK.
- T = -45 + 175 * ticks / 65535 °C, RH = -6 + 125 * ticks / 65535 %RH (ticks clamped to
  0..65535). The heater commands take their time, but its warming is not modelled: a
  heated measurement reads the air like any other.

The world (numbers or functions of virtual time in µs): temperature_c and humidity_pct of
the air around the chip. noise: repeatability (1 sigma), °C.
Faults (`fault`): "nack" (no ACK at all), "crc" (answers with corrupted CRCs), "stuck" (the
bus hangs: the board never completes the transfer), "stuck_value" (the same result
forever), "out_of_range" (temperature word 0xFFFF: 130 °C, past the 125 °C range)."""
import errno
import random

from hil_tests.virtual.board import BusFault
from hil_tests.virtual.models import Model
from hil_tests.virtual.models import sensirion_crc8 as crc8

ADDRESS = 0x44
MS = 1000
# command: (max duration in µs, repeatability noise factor)
MEASURE = {0xFD: (8300, 1.0), 0xF6: (4500, 1.75), 0xE0: (1700, 2.5),
           0x39: (1100 * MS, 1.0), 0x32: (110 * MS, 1.0), 0x2F: (1100 * MS, 1.0),
           0x24: (110 * MS, 1.0), 0x1E: (1100 * MS, 1.0), 0x15: (110 * MS, 1.0)}
SERIAL = 0x89
SOFT_RESET = 0x94


def _value(v, vt):
    return v(vt) if callable(v) else v


def t_ticks(c):
    return max(0, min(0xFFFF, round((c + 45) * 65535 / 175)))


def rh_ticks(pct):
    return max(0, min(0xFFFF, round((pct + 6) * 65535 / 125)))


class SHT4x(Model):
    def __init__(self, bus="i2c0", addr=ADDRESS, temperature_c=20.0, humidity_pct=60.0,
                 noise=0.04, serial=0x0B1E5EED, seed=4):
        self.bus, self.addr = bus, addr
        self.temperature_c = temperature_c
        self.humidity_pct = humidity_pct
        self.noise = noise
        self.serial = serial
        self._rng = random.Random(seed)
        self.busy_until = 0
        self.answer = None     # the words of the pending answer
        self._pending = None   # (command, started) of a measurement under way
        self._last = None      # the last result: repeated while "stuck_value"
        self.measurements = 0

    def bus_keys(self):
        return [("i2c", self.bus, self.addr)]

    def transfer(self, write, read_n, vt):
        if self.fault == "nack" or vt < self.busy_until:
            raise BusFault(errno.ENODEV)
        self._finish(vt)
        us = (len(write) + read_n + 1) * 9 * 10  # 100 kHz: 90 µs a byte with its ACK
        if write:
            self._command(write[0], vt)
        if not read_n:
            return b"", us
        if self.answer is None:
            raise BusFault(errno.ENODEV)  # nothing to read: the read header is not acknowledged
        words, self.answer = self.answer, None
        out = bytearray()
        for w in words:
            pair = bytes([w >> 8, w & 0xFF])
            crc = crc8(pair)
            if self.fault == "crc":
                crc ^= 0x5A
            out += pair + bytes([crc])
        return bytes(out[:read_n]), us

    def _command(self, code, vt):
        self.answer = None
        self._pending = None
        if code in MEASURE:
            self.busy_until = vt + MEASURE[code][0]
            self._pending = (code, vt)
        elif code == SERIAL:
            self.busy_until = vt + MS
            self.answer = [self.serial >> 16, self.serial & 0xFFFF]
        elif code == SOFT_RESET:
            self.busy_until = vt + MS
        else:
            raise BusFault(errno.ENODEV)

    def _finish(self, vt):
        """The result of a measurement that has ended by vt."""
        if self._pending is None:
            return
        code, started = self._pending
        self._pending = None
        duration, factor = MEASURE[code]
        end = started + duration
        self.measurements += 1
        if self.fault == "stuck_value" and self._last is not None:
            self.answer = list(self._last)
            return
        c = _value(self.temperature_c, end)
        c += self._rng.gauss(0, self.noise * factor) if self.noise else 0.0
        rh = _value(self.humidity_pct, end) + self._rng.gauss(0, 0.08 * factor)
        words = [t_ticks(c), rh_ticks(rh)]
        if self.fault == "out_of_range":
            words[0] = 0xFFFF
        self._last = list(words)
        self.answer = words
