# Sensirion SHT4x (SHT40, SHT41, SHT45) temperature and humidity sensor, I2C (SHT4x datasheet,
# version 6, February 2023: "Communication", "Command Overview", "Conversion of Signal Output").
#
# One-byte commands, no registers. After a measure command the chip measures for up to
# 8.3 ms (high repeatability) and does not acknowledge a read header until the result is
# ready. The result is 6 bytes: the temperature word, its CRC, the humidity word, its CRC
# (CRC-8, polynomial 0x31, init 0xFF, the same as every Sensirion chip).
from micropython import const
import time

from sensors.errors import BusError, CRCError, RangeError
from sensors.sensirion import crc8

ADDRESS = const(0x44)        # SHT4x-AD1B (0x45 for -BD1B, 0x46 for -CD1B)
_MEASURE_HIGH = const(0xFD)  # command overview: T and RH, high repeatability
_MEASURE_MS = const(9)       # measurement duration: 8.3 ms max at high repeatability
_T_MIN = const(-40)          # specified operating range, °C
_T_MAX = const(125)


class SHT4x:
    """measure() -> (temperature °C, relative humidity %) of a new high-repeatability
    measurement. BusError (no answer), CRCError, RangeError (outside -40..125 °C).
    ticks: the last temperature word (a frozen chip repeats it exactly)."""

    def __init__(self, i2c, addr=ADDRESS):
        self._i2c = i2c
        self._addr = addr
        self._cmd = bytearray((_MEASURE_HIGH,))
        self._buf = bytearray(6)
        self.ticks = None

    def measure(self):
        i2c, addr, buf = self._i2c, self._addr, self._buf
        try:
            i2c.writeto(addr, self._cmd)
            time.sleep_ms(_MEASURE_MS)
            i2c.readfrom_into(addr, buf)
        except OSError as e:
            raise BusError("sht4x: no answer at 0x%02x (%s)" % (addr, e))
        if crc8(buf, 0, 2) != buf[2] or crc8(buf, 3, 5) != buf[5]:
            raise CRCError("sht4x: bad CRC")
        self.ticks = buf[0] << 8 | buf[1]
        t = -45 + 175 * self.ticks / 65535
        if not _T_MIN <= t <= _T_MAX:
            raise RangeError("sht4x: %.1f C is outside the chip's range" % t)
        rh = -6 + 125 * (buf[3] << 8 | buf[4]) / 65535
        # conversion: the formula reaches past 0..100 %RH; the datasheet crops it
        return t, min(100.0, max(0.0, rh))
