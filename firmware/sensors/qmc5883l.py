# QMC5883L 3-axis AMR magnetometer (QST), I2C at 0x0D. Datasheet: QST "QMC5883L 3-Axis
# Magnetic Sensor", rev 1.0 (2016): sections "Register Map" and "Register Definition".
#
# The chip powers up in standby. A measurement here is a short burst: continuous mode at
# 200 Hz, a few samples each read after its data-ready flag, averaged, then standby again
# (about 2.6 mA while measuring, a few µA in standby). The driver returns the field in nT.
from micropython import const
import time

from sensors.errors import BusError, RangeError, SensorTimeout

ADDRESS = const(0x0D)          # 7-bit slave address (I2C interface)

# Register map
_REG_DATA = const(0x00)        # X, Y, Z: LSB then MSB, two's complement (output data registers)
_REG_STATUS = const(0x06)      # DOR | OVL | DRDY (status register)
_REG_TEMP = const(0x07)        # temperature LSB, MSB: 100 LSB/°C, offset not trimmed
_REG_CTRL1 = const(0x09)       # OSR[7:6] RNG[5:4] ODR[3:2] MODE[1:0] (control register 1)
_REG_CTRL2 = const(0x0A)       # SOFT_RST[7] ROL_PNT[6] INT_ENB[0] (control register 2)
_REG_PERIOD = const(0x0B)      # SET/RESET period: the datasheet recommends 0x01
_REG_CHIP_ID = const(0x0D)     # reads 0xFF

_CHIP_ID = const(0xFF)
_DRDY = const(0x01)            # new data in the output registers; cleared by reading them
_OVL = const(0x02)             # an axis exceeded the range: its output saturated
_MODE_STANDBY = const(0x00)
_MODE_CONTINUOUS = const(0x01)
_ODR_200HZ = const(0x0C)
_OSR_512 = const(0x00)         # the most oversampling: the least noise
_RNG_2G = const(0x00)
_RNG_8G = const(0x10)
_SOFT_RST = const(0x80)
_ROL_PNT = const(0x40)
_INT_DISABLE = const(0x01)     # INT_ENB = 1 disables the DRDY pin: we poll the status
_PERIOD = const(0x01)

_LSB_PER_GAUSS_2G = const(12000)  # field range / sensitivity table
_LSB_PER_GAUSS_8G = const(3000)
_NT_PER_GAUSS = const(100000)     # 1 G = 100 µT
_SAMPLE_MS = const(5)             # 200 Hz output data rate
_WAIT_MS = const(50)              # ten sample periods without data-ready: the chip is not measuring
_RESET_MS = const(1)              # power-on/soft-reset completes in 350 µs


class QMC5883L:
    def __init__(self, i2c, addr=ADDRESS, range_gauss=2):
        self._i2c = i2c
        self._addr = addr
        self._one = bytearray(1)
        self._data = bytearray(6)
        self._temp = bytearray(2)
        self._range = _RNG_8G if range_gauss == 8 else _RNG_2G
        self._lsb_per_gauss = _LSB_PER_GAUSS_8G if range_gauss == 8 else _LSB_PER_GAUSS_2G
        chip = self._read_reg(_REG_CHIP_ID)
        if chip != _CHIP_ID:
            raise BusError("qmc5883l: chip id 0x%02x at 0x%02x, expected 0xff" % (chip, addr))
        self.reset()

    # ------------------------------------------------------------ registers

    def _read_reg(self, reg):
        try:
            self._i2c.readfrom_mem_into(self._addr, reg, self._one)
        except OSError as e:
            raise BusError("qmc5883l: no answer at 0x%02x (%s)" % (self._addr, e))
        return self._one[0]

    def _write_reg(self, reg, value):
        self._one[0] = value
        try:
            self._i2c.writeto_mem(self._addr, reg, self._one)
        except OSError as e:
            raise BusError("qmc5883l: no answer at 0x%02x (%s)" % (self._addr, e))

    def reset(self):
        """Soft reset (all registers back to their defaults: standby), then our settings.
        Every wake starts here: a sensor that browned out alone is configured again."""
        self._write_reg(_REG_CTRL2, _SOFT_RST)
        time.sleep_ms(_RESET_MS)
        self._write_reg(_REG_PERIOD, _PERIOD)
        self._write_reg(_REG_CTRL2, _ROL_PNT | _INT_DISABLE)
        self._write_reg(_REG_CTRL1, _MODE_STANDBY)

    # ------------------------------------------------------------ measuring

    def field_nt(self, samples=4):
        """The field (x, y, z) in nT, the mean of `samples` consecutive conversions.
        RangeError on saturation (OVL) or a frozen output, SensorTimeout if data-ready
        never comes, BusError if the chip does not answer."""
        self._write_reg(_REG_CTRL1, _OSR_512 | self._range | _ODR_200HZ | _MODE_CONTINUOUS)
        sx = sy = sz = 0
        fx = fy = fz = None
        same = True
        try:
            for _ in range(samples):
                self._wait_ready()
                try:
                    self._i2c.readfrom_mem_into(self._addr, _REG_DATA, self._data)
                except OSError as e:
                    raise BusError("qmc5883l: no answer at 0x%02x (%s)" % (self._addr, e))
                d = self._data
                x = _s16(d[0], d[1])
                y = _s16(d[2], d[3])
                z = _s16(d[4], d[5])
                if fx is None:
                    fx, fy, fz = x, y, z
                elif x != fx or y != fy or z != fz:
                    same = False
                sx += x
                sy += y
                sz += z
        finally:
            try:
                self._write_reg(_REG_CTRL1, _MODE_STANDBY)
            except BusError:
                pass  # the error that brought us here is the one to report
        if samples > 1 and same:
            # Sensor noise alone moves the 16-bit outputs between conversions: identical
            # triples mean the converter has stopped.
            raise RangeError("qmc5883l: output frozen at the same value")
        div = self._lsb_per_gauss * samples
        return (sx * _NT_PER_GAUSS // div, sy * _NT_PER_GAUSS // div, sz * _NT_PER_GAUSS // div)

    def _wait_ready(self):
        waited = 0
        while True:
            status = self._read_reg(_REG_STATUS)
            if status & _OVL:
                raise RangeError("qmc5883l: field beyond the range (OVL)")
            if status & _DRDY:
                return
            if waited >= _WAIT_MS:
                raise SensorTimeout("qmc5883l: no data-ready within %d ms" % _WAIT_MS)
            time.sleep_ms(_SAMPLE_MS)
            waited += _SAMPLE_MS

    def temperature_raw(self):
        """The die temperature in 1/100 °C plus an untrimmed offset: good for changes only."""
        try:
            self._i2c.readfrom_mem_into(self._addr, _REG_TEMP, self._temp)
        except OSError as e:
            raise BusError("qmc5883l: no answer at 0x%02x (%s)" % (self._addr, e))
        return _s16(self._temp[0], self._temp[1])


def _s16(lsb, msb):
    value = lsb | (msb << 8)
    return value - 0x10000 if value & 0x8000 else value
