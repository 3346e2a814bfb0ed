"""A parking-space node: a QMC5883L magnetometer in the pavement under the space, a battery.
It wakes every 30 s to sense and uplinks on a change or an hourly heartbeat; the space is a
30-minute "shop and go" one.

`Day` is a scenario: arrivals and departures in this space and the next one, traffic
passing the sensor, the day's temperature, from a seed, with the ground truth."""
import bisect
import math
import random

from hil_tests.virtual.models.battery import BatteryADC
from hil_tests.virtual.models.qmc5883l import QMC5883L

POWER = "battery"
INTERVAL = 30
SENSORS = {"i2c": 0, "scl": 22, "sda": 21}
SETTINGS = {"time_limit_min": 30, "heartbeat_min": 60}

MINUTE = 60 * 10**6
HOUR = 60 * MINUTE
RAMP_US = 4 * 10**6     # a car takes about 4 s to drive onto or off the space


def models(car=None, neighbour=None, temperature_c=20.0, volts=3.7, noise_ut=0.25, seed=1):
    return [BatteryADC(volts=volts),
            QMC5883L(bus="i2c%d" % SENSORS["i2c"], car=car, neighbour=neighbour,
                     temperature_c=temperature_c, noise_ut=noise_ut, seed=seed)]


def _direction(rng, magnitude, vertical=2.0):
    """A random vector of this magnitude; cars disturb the vertical component most."""
    v = (rng.gauss(0, 1), rng.gauss(0, 1), rng.gauss(0, vertical))
    n = math.sqrt(sum(c * c for c in v)) or 1.0
    return tuple(c * magnitude / n for c in v)


def _ramp(vt, start, end):
    """0..1..0: driving on over RAMP_US from start, parked, driving off over RAMP_US to end."""
    if vt < start or vt >= end:
        return 0.0
    return min(1.0, (vt - start) / RAMP_US, (end - vt) / RAMP_US)


class Stays:
    """Cars in one space: (arrive, leave, signature µT), sorted, not overlapping."""

    def __init__(self, stays):
        self.stays = stays
        self._starts = [s[0] for s in stays]

    def at(self, vt):
        i = bisect.bisect_right(self._starts, vt) - 1
        if i < 0:
            return None
        start, end, sig = self.stays[i]
        k = _ramp(vt, start, end)
        return tuple(c * k for c in sig) if k else None


def _busy(hour):
    """Relative demand by hour of day: quiet at night, busy in shop hours."""
    if hour < 6 or hour >= 22:
        return 0.15
    if 9 <= hour < 19:
        return 1.0
    return 0.5


class Day:
    """A day (or several) of a shop-and-go space from midnight: most stays 3..30 min, one in
    five 30..90 min (overstays), a few overnight, with gaps of about 10 min in shop hours and
    longer at night; the next space used the same way (1.5..4 µT at our sensor); traffic
    passing (0.3..1.5 s, 2..12 µT). The space is free for the first 15 minutes: the node
    calibrates at install."""

    def __init__(self, seed=1, days=1.0, car_ut=(15.0, 70.0), neighbour_ut=(1.5, 4.0),
                 passing_per_hour=40, start_free_us=15 * MINUTE):
        rng = random.Random(seed)
        self.end = int(days * 24 * HOUR)
        self.space = Stays(self._stays(rng, car_ut, start_free_us))
        self.next_space = Stays(self._stays(rng, neighbour_ut, 0))
        self.passing = self._passing(rng, passing_per_hour)
        self._passing_starts = [p[0] for p in self.passing]

    def _stays(self, rng, magnitude, t):
        stays = []
        while True:
            hour = (t / HOUR) % 24
            t += int(rng.expovariate(_busy(hour) / (10 * MINUTE))) + MINUTE
            if t >= self.end:
                return stays
            if rng.random() < 0.8:
                length = int(rng.uniform(3, 30) * MINUTE)   # shop and go
            else:
                length = int(rng.uniform(30, 90) * MINUTE)  # overstays
            if rng.random() < 0.05 and (t / HOUR) % 24 > 18:
                length = int(rng.uniform(8, 14) * HOUR)  # parked overnight
            stays.append((t, t + length, _direction(rng, rng.uniform(*magnitude))))
            t += length

    def _passing(self, rng, per_hour):
        out = []
        t = 0
        while True:
            hour = (t / HOUR) % 24
            t += int(rng.expovariate(per_hour * _busy(hour) / HOUR)) + 1
            if t >= self.end:
                return out
            out.append((t, t + int(rng.uniform(0.3, 1.5) * 10**6),
                        _direction(rng, rng.uniform(2.0, 12.0), vertical=1.0)))

    # ------------------------------------------------------------ the world

    def car(self, vt):
        return self.space.at(vt)

    def nearby(self, vt):
        """The car in the next space plus any traffic passing the sensor."""
        total = self.next_space.at(vt)
        i = bisect.bisect_right(self._passing_starts, vt) - 1
        if i >= 0 and vt < self.passing[i][1]:
            v = self.passing[i][2]
            total = tuple(a + b for a, b in zip(total or (0, 0, 0), v))
        return total

    def temperature_c(self, vt):
        """12 °C at 3:00, 28 °C at 15:00."""
        return 20.0 - 8.0 * math.cos(2 * math.pi * (vt / HOUR - 3) / 24)

    # ------------------------------------------------------------ ground truth

    def changes(self):
        """(virtual time, occupied) of every change, at the middle of the car's ramp."""
        out = []
        for start, end, _ in self.space.stays:
            out.append((start + RAMP_US // 2, True))
            if end < self.end:
                out.append((end - RAMP_US // 2, False))
        return out

    def occupied(self, vt):
        for start, end, _ in self.space.stays:
            if start + RAMP_US // 2 <= vt < end - RAMP_US // 2:
                return True
        return False

    def models(self, seed=1, **options):
        return models(car=self.car, neighbour=self.nearby, temperature_c=self.temperature_c,
                      seed=seed, **options)
