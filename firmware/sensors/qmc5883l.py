# QMC5883L 3-axis AMR magnetometer (QST), I2C at 0x0D. Datasheet: QST "QMC5883L 3-Axis
# Magnetic Sensor", rev 1.0 (2016), sections "Register Map" and "Register Definition".
#
# The chip powers up in standby. A measurement here is a short burst: continuous mode at
# 200 Hz, a few conversions each read after its data-ready flag and averaged, then standby
# again (the chip draws about 2.6 mA while converting, a few µA in standby). Field in nT.
#
# Names are few on purpose: every new identifier costs an interned string in RAM, and the
# node's heap is small.
from micropython import const
import time

from sensors.errors import BusError, RangeError, SensorTimeout

_ADDRESS = const(0x0D)         # 7-bit slave address (I2C interface)
# Register map
_REG_DATA = const(0x00)        # X, Y, Z: LSB then MSB, two's complement (output data registers)
_REG_STATUS = const(0x06)      # DOR | OVL | DRDY (status register)
_REG_CTRL1 = const(0x09)       # OSR[7:6] RNG[5:4] ODR[3:2] MODE[1:0] (control register 1)
_REG_CTRL2 = const(0x0A)       # SOFT_RST[7] ROL_PNT[6] INT_ENB[0] (control register 2)
_REG_PERIOD = const(0x0B)      # SET/RESET period: the datasheet recommends 0x01
_REG_CHIP_ID = const(0x0D)     # reads 0xFF
# (0x07/0x08 hold the die temperature, 100 LSB/°C with an untrimmed offset: not used)

_CHIP_ID = const(0xFF)
_DRDY = const(0x01)            # new data in the output registers; cleared by reading them
_OVL = const(0x02)             # an axis beyond the 16-bit output: it saturated
_STANDBY = const(0x00)         # MODE 00
# OSR 512 (the least noise), RNG 2 G (a car adds tens of µT to the Earth's 50: far from the
# range), ODR 200 Hz, MODE 01 continuous
_CONTINUOUS = const(0x0D)
_SOFT_RST = const(0x80)        # every register back to its default (standby)
_CTRL2 = const(0x41)           # ROL_PNT, INT_ENB = 1: the DRDY pin off, we poll the status
_PERIOD = const(0x01)
# Field range / sensitivity: 12000 LSB/G at 2 G; 1 G = 100000 nT, so nT = LSB * 100 / 12,
# small integers on the chip.
_DIV_2G = const(12)
_SAMPLE_MS = const(5)          # 200 Hz output data rate
_WAIT_MS = const(50)           # ten periods without data-ready: the chip is not converting
_RESET_MS = const(1)           # power-on / soft reset completes in 350 µs


class QMC5883L:
    def __init__(self, i2c, addr=_ADDRESS):
        self._i2c = i2c
        self._addr = addr
        self._one = bytearray(1)
        self._buf = bytearray(6)
        chip = self._reg(_REG_CHIP_ID)
        if chip != _CHIP_ID:
            raise BusError("qmc5883l: chip id 0x%02x at 0x%02x, expected 0xff" % (chip, addr))
        self.reset()

    def _reg(self, reg, value=None):
        """Read a register (value None) or write one; BusError if the chip does not answer."""
        try:
            if value is None:
                self._i2c.readfrom_mem_into(self._addr, reg, self._one)
                return self._one[0]
            self._one[0] = value
            self._i2c.writeto_mem(self._addr, reg, self._one)
        except OSError as e:
            raise BusError("qmc5883l: no answer at 0x%02x (%s)" % (self._addr, e))

    def reset(self):
        """Soft reset, then our settings. Every wake starts here, so a sensor that browned
        out on its own is configured again."""
        self._reg(_REG_CTRL2, _SOFT_RST)
        time.sleep_ms(_RESET_MS)
        self._reg(_REG_PERIOD, _PERIOD)
        self._reg(_REG_CTRL2, _CTRL2)
        self._reg(_REG_CTRL1, _STANDBY)

    def field_nt(self, n=4):
        """The field (x, y, z) in nT, the mean of n consecutive conversions. RangeError on
        saturation (OVL) or frozen outputs, SensorTimeout if data-ready never comes,
        BusError if the chip does not answer."""
        self._reg(_REG_CTRL1, _CONTINUOUS)
        sx = sy = sz = 0
        first = None
        same = True
        buf = self._buf
        try:
            for _ in range(n):
                waited = 0
                while True:
                    status = self._reg(_REG_STATUS)
                    if status & _OVL:
                        raise RangeError("qmc5883l: field beyond the range (OVL)")
                    if status & _DRDY:
                        break
                    if waited >= _WAIT_MS:
                        raise SensorTimeout("qmc5883l: no data-ready in %d ms" % _WAIT_MS)
                    time.sleep_ms(_SAMPLE_MS)
                    waited += _SAMPLE_MS
                try:
                    self._i2c.readfrom_mem_into(self._addr, _REG_DATA, buf)
                except OSError as e:
                    raise BusError("qmc5883l: no answer at 0x%02x (%s)" % (self._addr, e))
                x = _s16(buf, 0)
                y = _s16(buf, 2)
                z = _s16(buf, 4)
                if first is None:
                    first = (x, y, z)
                elif x != first[0] or y != first[1] or z != first[2]:
                    same = False
                sx += x
                sy += y
                sz += z
        finally:
            try:
                self._reg(_REG_CTRL1, _STANDBY)
            except BusError:
                pass  # the error that brought us here is the one to report
        if n > 1 and same:
            # Noise alone moves the 16-bit outputs between conversions: identical triples
            # mean the converter has stopped.
            raise RangeError("qmc5883l: outputs frozen")
        div = _DIV_2G * n
        return (sx * 100 // div, sy * 100 // div, sz * 100 // div)


def _s16(buf, n):
    v = buf[n] | (buf[n + 1] << 8)
    return v - 0x10000 if v & 0x8000 else v
