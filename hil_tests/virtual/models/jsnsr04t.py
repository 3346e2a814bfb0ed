"""JSN-SR04T waterproof ultrasonic rangefinder, trigger/echo mode, from its datasheet:
a TRIG high pulse of at least 10 µs starts a measurement; after the 40 kHz burst ECHO goes
high for the sound's round trip (distance = time × speed of sound / 2). Nothing in range
(beyond ~4.5 m): ECHO high for about 38 ms. Closer than the ~200 mm blind zone: the echo is
lost in the transducer's ringing, and the module reports a distance near the blind zone.

Faults: "dead" (ECHO never rises), "noise" (every few pings an echo off a wall)."""
import random

from hil_tests.virtual.models import Model

NO_ECHO_US = 38000
BLIND_MM = 200
MAX_MM = 4500


def sound_mm_per_s(temperature_c):
    return (331.3 + 0.606 * temperature_c) * 1000


class JSNSR04T(Model):
    def __init__(self, trigger=5, echo=18, distance_mm=800.0, temperature_c=20.0,
                 jitter_mm=0.0, seed=1):
        self.trigger_pin = trigger
        self.echo_pin = echo
        self.jitter_mm = jitter_mm  # timing jitter of the echo, as a distance (1 sigma)
        self._rng = random.Random(seed)
        self.distance_mm = distance_mm      # a number or a function of virtual time
        self.temperature_c = temperature_c  # the air the sound crosses
        self._trigger_high_at = None
        self._armed = False
        self.pings = 0

    def bus_keys(self):
        return [("pin", self.trigger_pin), ("pulse", self.echo_pin)]

    def write(self, value, vt):
        if value:
            self._trigger_high_at = vt
        elif self._trigger_high_at is not None:
            # datasheet: the pulse must be at least 10 µs to start a measurement
            self._armed = vt - self._trigger_high_at >= 10
            self._trigger_high_at = None

    def read(self, vt):
        return 0

    def pulse_us(self, level, timeout_us, vt):
        if not self._armed or self.fault == "dead":
            return -2  # time_pulse_us: timed out waiting for the pulse to start
        self._armed = False
        self.pings += 1
        distance = self.distance_mm(vt) if callable(self.distance_mm) else self.distance_mm
        distance += self._rng.gauss(0, self.jitter_mm) if self.jitter_mm else 0
        if self.fault == "noise" and self.pings % 4 == 0:
            distance *= 0.6  # an echo off the container wall
        if distance > MAX_MM:
            width = NO_ECHO_US
        else:
            air = self.temperature_c(vt) if callable(self.temperature_c) else self.temperature_c
            width = int(2 * max(distance, BLIND_MM) / sound_mm_per_s(air) * 1e6)
        return width if width <= timeout_us else -1
