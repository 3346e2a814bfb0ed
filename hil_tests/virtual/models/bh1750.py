"""ROHM BH1750FVI ambient light sensor on I2C, from its datasheet.

One-byte opcodes, no register address: 0x00 power down, 0x01 power on, 0x07 reset (clears
the data register; ignored in power down), 0x10 / 0x11 / 0x13 continuous H / H2 / L
resolution, 0x20 / 0x21 / 0x23 one-time H / H2 / L (the chip powers down after the one
measurement), 0b01000_xxx and 0b011_xxxxx the high and low bits of the measurement time
register MTreg (default 69). A 2-byte read returns the data register big-endian.
Measurement time: H and H2 120 ms typical, 180 ms max; L 16 ms typical, 24 ms max, scaled
by MTreg / 69. Count = lux × 1.2 × MTreg / 69 (H), twice that (H2, 0.5 lx steps), in 4-count
steps (L); the register saturates at 0xFFFF. At power-up the chip is in power down with the
data register at 0. A read before a conversion completes returns the previous result.

The scenario gives the illuminance as a number or a function of virtual time (µs);
`daylight()` builds a day with dawn, noon and dusk. Faults: "nack" (no ACK, ENODEV),
"stuck" (holds the bus, never answers: the watchdog must act), "stuck_value" (the data
register freezes), "saturated" (reads 0xFFFF, e.g. a torch on the sensor)."""
import math

from hil_tests.virtual.board import BusFault
from hil_tests.virtual.models import Model

ADDR = 0x23
_H_US, _L_US = 120000, 16000   # typical conversion times at MTreg 69 (this model's chip)
_DAY_US = 86400 * 1000000


def daylight(sunrise_h=7.0, sunset_h=19.0, noon_lux=20000.0, night_lux=0.3, day_us=_DAY_US):
    """Illuminance as a function of virtual time (µs since midnight of day 0): a sine of
    the sun's height by day, an exponential fall through twilight (about 400 lx at sunset,
    0.4 lx some 25 minutes later), then starlight and street glow."""
    rise, set_ = sunrise_h * 3600e6, sunset_h * 3600e6
    day_len = set_ - rise
    night_len = day_us - day_len

    def lux(vt):
        t = vt % day_us
        if rise <= t < set_:
            height = math.sin(math.pi * (t - rise) / day_len)
        else:
            height = -math.sin(math.pi * ((t - set_) % day_us) / night_len)
        if height > 0.02:
            return noon_lux * height
        return max(night_lux, noon_lux * 0.02 * 10 ** ((height - 0.02) / 0.12 * 3))
    return lux


def crossing_times(lux, threshold, start_us, end_us, step_us=1000000):
    """The virtual times at which `lux` falls below (dusk) and rises above (dawn) a
    threshold, to the second: [(vt, "dusk" | "dawn"), ...]."""
    found = []
    below = lux(start_us) < threshold
    for vt in range(start_us, end_us, step_us):
        now = lux(vt) < threshold
        if now != below:
            found.append((vt, "dusk" if now else "dawn"))
            below = now
    return found


class BH1750(Model):
    def __init__(self, bus="i2c0", addr=ADDR, lux=100.0, noise=0.02, seed=1750):
        self.bus, self.addr = bus, addr
        self.lux = lux          # lux, or a function of virtual time (µs)
        self.noise = noise      # relative noise of one measurement
        self.powered = False
        self.mode = None        # last measurement opcode
        self.mtreg = 69
        self.data = 0
        self._started = None    # virtual time the current measurement started
        self._mt_high = 69 >> 5
        self.reads = 0
        import random
        self._rng = random.Random(seed)

    def bus_keys(self):
        return [("i2c", self.bus, self.addr)]

    def _conversion_us(self):
        base = _L_US if self.mode in (0x13, 0x23) else _H_US
        return base * self.mtreg // 69

    def _count(self, vt):
        lux = self.lux(vt) if callable(self.lux) else self.lux
        lux *= 1 + self._rng.gauss(0, self.noise)
        count = max(0.0, lux) * 1.2 * self.mtreg / 69
        if self.mode in (0x11, 0x21):
            count *= 2
        count = int(count)
        if self.mode in (0x13, 0x23):
            count &= ~3
        return min(0xFFFF, count)

    def _update(self, vt):
        """Latch the results of the conversions completed by vt."""
        if self._started is None or self.fault == "stuck_value":
            return
        period = self._conversion_us()
        if vt - self._started < period:
            return
        if self.mode in (0x20, 0x21, 0x23):
            self.data = self._count(self._started + period)
            self._started = None
            self.powered = False  # one-time modes power down after their measurement
        else:
            done = (vt - self._started) // period
            self._started += done * period
            self.data = self._count(self._started)

    def transfer(self, write, read_n, vt):
        if self.fault == "nack":
            raise BusFault()
        self._update(vt)
        for op in write:
            self._opcode(op, vt)
        if not read_n:
            return b"", 0
        self.reads += 1
        value = 0xFFFF if self.fault == "saturated" else self.data
        out = bytes([value >> 8, value & 0xFF])
        return (out * ((read_n + 1) // 2))[:read_n], 0

    def _opcode(self, op, vt):
        if op == 0x00:
            self.powered, self._started = False, None
        elif op == 0x01:
            self.powered = True
        elif op == 0x07:
            if self.powered:
                self.data = 0
        elif op in (0x10, 0x11, 0x13, 0x20, 0x21, 0x23):
            self.powered, self.mode, self._started = True, op, vt
        elif op & 0xF8 == 0x40:
            self._mt_high = op & 0x07
        elif op & 0xE0 == 0x60:
            self.mtreg = max(31, min(254, self._mt_high << 5 | (op & 0x1F)))
        # other opcodes: the datasheet forbids them; the chip ignores them here
