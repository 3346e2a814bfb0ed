# ROHM BH1750FVI ambient light sensor, I2C. Datasheet: "Instruction Set Architecture"
# (opcodes), "Measurement mode explanation" (times), "Measurement sequence example" (the
# count / 1.2 conversion). One-byte opcodes, no registers; a 2-byte read returns the last
# result, big-endian. At power-up the chip is in Power Down and answers with 0.
from micropython import const
import time

from sensors.errors import BusError

_ADDR = const(0x23)          # ADDR pin low (0x5C with ADDR high)
_POWER_ON = const(0x01)      # opcode table: wait for a measurement command
_RESET = const(0x07)         # opcode table: clear the data register (not in Power Down)
_CONT_H_RES = const(0x10)    # opcode table: continuous, 1 lx resolution
_CONT_H_MS = const(180)      # measurement mode explanation: 120 ms typ., 180 ms max.


class BH1750:
    """start() powers the chip up in continuous high-resolution mode; lux() returns the
    latest result. OSError from the bus becomes BusError."""

    def __init__(self, i2c, addr=_ADDR):
        self._i2c = i2c
        self._addr = addr
        self._cmd = bytearray(1)
        self._buf = bytearray(2)
        self._ready_at = None
        self._started = False

    def _send(self, opcode):
        self._cmd[0] = opcode
        try:
            self._i2c.writeto(self._addr, self._cmd)
        except OSError as e:
            raise BusError("bh1750: no answer at 0x%02x (%s)" % (self._addr, e))

    def start(self):
        self._send(_POWER_ON)
        self._send(_RESET)
        self._send(_CONT_H_RES)
        self._ready_at = time.ticks_add(time.ticks_ms(), _CONT_H_MS)
        self._started = True

    def lux(self):
        """The latest result in lux; waits out the first conversion after start()."""
        if not self._started:
            self.start()
        if self._ready_at is not None:
            left = time.ticks_diff(self._ready_at, time.ticks_ms())
            if left > 0:
                time.sleep_ms(left)  # before the first conversion the register holds 0
            self._ready_at = None  # later reads get the latest of the continuous results
        try:
            self._i2c.readfrom_into(self._addr, self._buf)
        except OSError as e:
            self._started = False  # the chip may have lost power: set it up again
            raise BusError("bh1750: read failed (%s)" % e)
        return (self._buf[0] << 8 | self._buf[1]) / 1.2  # sequence example: count / 1.2
