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
    """lux() -> the latest result in lux. The first call (and the first after a bus error:
    the chip may have lost power) powers it up in continuous high-resolution mode and waits
    out the first conversion. OSError from the bus becomes BusError."""

    def __init__(self, i2c, addr=_ADDR):
        self._i2c = i2c
        self._addr = addr
        self._cmd = bytearray(1)
        self._buf = bytearray(2)
        self._started = False

    def lux(self):
        i2c, addr = self._i2c, self._addr
        try:
            if not self._started:
                for opcode in (_POWER_ON, _RESET, _CONT_H_RES):
                    self._cmd[0] = opcode
                    i2c.writeto(addr, self._cmd)
                # before the first conversion ends the data register still holds 0
                time.sleep_ms(_CONT_H_MS)
                self._started = True
            i2c.readfrom_into(addr, self._buf)
        except OSError as e:
            self._started = False
            raise BusError("bh1750: no answer at 0x%02x (%s)" % (addr, e))
        return (self._buf[0] << 8 | self._buf[1]) / 1.2  # sequence example: count / 1.2
