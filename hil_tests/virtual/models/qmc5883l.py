"""QST QMC5883L 3-axis magnetometer on I2C, from its datasheet (rev 1.0):

- slave address 0x0D; a write sets the register pointer, further bytes are written from
  it on; a read returns bytes from the pointer on, the pointer advancing after each byte.
  With ROL_PNT (0x0A bit 6) set the pointer rolls from 0x06 back to 0x00.
- 0x00..0x05 X, Y, Z as LSB, MSB, two's complement; 0x06 status: DRDY (bit 0) set when a
  conversion has loaded new data, cleared by reading any data register; OVL (bit 1) set
  while an axis is beyond the 16-bit output (saturated at -32768/32767), cleared by the
  next conversion in range; DOR (bit 2) set when a conversion overwrote data never read,
  cleared by reading a data register. 0x07/0x08 temperature, 100 LSB/°C, offset untrimmed.
- 0x09 control 1: MODE[1:0] (00 standby, 01 continuous), ODR[3:2] (10/50/100/200 Hz),
  RNG[5:4] (00 2 G: 12000 LSB/G, 01 8 G: 3000 LSB/G), OSR[7:6]. 0x0A control 2:
  SOFT_RST (bit 7) restores every register's default (standby), ROL_PNT (bit 6),
  INT_ENB (bit 0). 0x0B SET/RESET period (0x01 recommended). 0x0D chip id 0xFF.
- Power-on: standby, no data. In continuous mode a conversion completes every 1/ODR after
  the mode was entered; a read before the first one gets the old (or zero) data with DRDY 0.
  In standby the data registers keep the last conversion.

The world: Earth's field plus what the scenario puts near the sensor (a car parked over it,
a car in the neighbouring space, traffic passing by), each a vector in µT or a function of
virtual time (µs) returning one (or None); Gaussian noise per conversion; a slow offset
drift with the die temperature.

Faults: "nack" (no acknowledge: ENODEV), "stuck" (the bus never finishes: the host sends no
answer), "stuck_value" (the outputs freeze at the last conversion, DRDY still toggles),
"noise" (ten times the noise), "out_of_range" (a magnet on the sensor: outputs saturate,
OVL), "not_ready" (conversions never complete: DRDY stays 0). The chip has no CRC."""
import random

from hil_tests.virtual.board import BusFault
from hil_tests.virtual.models import Model

ADDRESS = 0x0D
CHIP_ID = 0xFF
LSB_PER_GAUSS = {0: 12000, 1: 3000}
ODR_HZ = (10, 50, 100, 200)
BYTE_US = 23           # 9 bits at 400 kHz
EARTH_UT = (19.0, 1.5, -44.0)   # mid-latitude Europe: 19 µT north, 44 µT down
TEMPCO_UT_PER_C = (0.06, -0.04, 0.08)
TEMP_OFFSET_C = 32.0   # the untrimmed offset of the temperature output

_WRITABLE = (0x09, 0x0A, 0x0B)


def _value(v, vt):
    v = v(vt) if callable(v) else v
    return v if v else None


class QMC5883L(Model):
    def __init__(self, bus="i2c0", addr=ADDRESS, earth_ut=EARTH_UT, car=None, neighbour=None,
                 temperature_c=20.0, noise_ut=0.25, tempco_ut_per_c=TEMPCO_UT_PER_C, seed=1):
        self.bus = bus
        self.addr = addr
        self.earth_ut = earth_ut
        self.car = car                # a vector (µT) or a function of vt, or None
        self.neighbour = neighbour    # likewise: the next space, passing traffic
        self.temperature_c = temperature_c
        self.noise_ut = noise_ut
        self.tempco = tempco_ut_per_c
        self._rng = random.Random(seed)
        self.conversions = 0
        self._power_on()

    def bus_keys(self):
        return [("i2c", self.bus, self.addr)]

    def _power_on(self):
        self.regs = bytearray(14)
        self.regs[0x0D] = CHIP_ID
        self._pointer = 0
        self._t0 = None      # when continuous mode began
        self._done = 0       # conversions completed since then

    # ------------------------------------------------------------ the world

    def field_ut(self, vt):
        """The field at the sensor (µT) without noise and drift: what a perfect chip reads."""
        x, y, z = self.earth_ut
        for source in (self.car, self.neighbour):
            v = _value(source, vt)
            if v:
                x, y, z = x + v[0], y + v[1], z + v[2]
        return x, y, z

    def _temperature(self, vt):
        t = self.temperature_c
        return t(vt) if callable(t) else t

    def _convert(self, vt, skipped):
        """One conversion at vt into the output registers; `skipped`: data that was never
        read has been overwritten."""
        self.conversions += 1
        regs = self.regs
        dor = 0x04 if skipped or regs[6] & 0x01 else 0
        if self.fault == "stuck_value" and self.conversions > 1:
            regs[6] = 0x01 | (regs[6] & 0x02) | dor
            return
        lsb_per_ut = LSB_PER_GAUSS[(regs[9] >> 4) & 0x03] / 100.0
        temperature = self._temperature(vt)
        noise = self.noise_ut * (10 if self.fault == "noise" else 1)
        overflow = False
        for axis, b in enumerate(self.field_ut(vt)):
            b += self.tempco[axis] * (temperature - 20.0) + self._rng.gauss(0.0, noise)
            if self.fault == "out_of_range":
                b = 900.0 * (1 if axis != 2 else -1)  # a magnet stuck to the housing
            raw = int(round(b * lsb_per_ut))
            if raw > 32767 or raw < -32768:
                overflow = True
                raw = max(-32768, min(32767, raw))
            raw &= 0xFFFF
            regs[2 * axis] = raw & 0xFF
            regs[2 * axis + 1] = raw >> 8
        t = int(round((temperature + TEMP_OFFSET_C) * 100)) & 0xFFFF
        regs[7], regs[8] = t & 0xFF, t >> 8
        regs[6] = 0x01 | (0x02 if overflow else 0) | dor

    def _catch_up(self, vt):
        """Run the conversions the chip completed up to vt."""
        if self._t0 is None or self.fault == "not_ready":
            return
        period = 1e6 / ODR_HZ[(self.regs[9] >> 2) & 0x03]
        due = int((vt - self._t0) // period)
        if due > self._done:
            # Only the newest conversion shows in the registers; older ones were overwritten.
            skipped = due - self._done > 1
            self._done = due
            self._convert(self._t0 + due * period, skipped)

    # ------------------------------------------------------------ the bus

    def transfer(self, write, read_n, vt):
        if self.fault == "nack":
            raise BusFault()
        self._catch_up(vt)
        if write:
            self._pointer = write[0]
            for value in write[1:]:
                self._write(self._pointer, value, vt)
                self._pointer += 1
        out = bytearray()
        data_read = False
        for _ in range(read_n):
            p = self._pointer
            out.append(self.regs[p] if p < len(self.regs) else 0)
            data_read = data_read or p <= 0x05
            if self.regs[0x0A] & 0x40 and p == 0x06:
                self._pointer = 0
            else:
                self._pointer = (p + 1) & 0xFF
        if data_read:
            self.regs[6] &= ~0x05  # DRDY and DOR clear once the data is read
        return bytes(out), (len(write) + read_n + 1) * BYTE_US

    def _write(self, reg, value, vt):
        if reg == 0x0A and value & 0x80:
            self._power_on()  # soft reset: every register to its default
            return
        if reg not in _WRITABLE:
            return  # read-only or reserved: ignored
        before = self.regs[reg]
        self.regs[reg] = value
        if reg == 0x09:
            continuous = value & 0x03 == 0x01
            if not continuous:
                self._t0 = None
            elif self._t0 is None or (before ^ value) & 0x0C:
                self._t0, self._done = vt, 0  # (re)start conversions at this ODR
