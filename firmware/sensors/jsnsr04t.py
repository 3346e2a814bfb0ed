# JSN-SR04T waterproof ultrasonic rangefinder, trigger/echo mode (mode 0).
# Datasheet: a trigger pulse of at least 10 µs starts a measurement; the module sends a
# 40 kHz burst and holds ECHO high for the round-trip time of the sound. Range 250..4500 mm
# (the transducer rings for the first ~250 mm: the blind zone). No echo: ECHO stays high
# for about 38 ms, or never rises when the module is dead or unplugged.
from micropython import const
import time

from machine import Pin, time_pulse_us
from sensors.errors import RangeError, SensorTimeout

_TRIGGER_US = const(20)        # datasheet: > 10 µs
_ECHO_TIMEOUT_US = const(60000)  # longer than the 38 ms "no echo" pulse
_NO_ECHO_US = const(30000)     # 5 m round trip is 29 ms: longer means no echo
_MIN_MM = const(200)
_MAX_MM = const(4500)
_CYCLE_MS = const(60)          # datasheet: at least 50 ms between measurements


class JSNSR04T:
    def __init__(self, trigger, echo):
        self._trigger = trigger
        self._echo = echo
        trigger.init(Pin.OUT, value=0)
        echo.init(Pin.IN)

    def echo_us(self):
        """One ping: the echo time in µs; SensorTimeout if the module never answers."""
        self._trigger.value(1)
        time.sleep_us(_TRIGGER_US)
        self._trigger.value(0)
        us = time_pulse_us(self._echo, 1, _ECHO_TIMEOUT_US)
        if us < 0:
            raise SensorTimeout("jsn-sr04t: no echo pulse (module dead or unplugged)")
        return us

    def distance_mm(self, sound_mm_per_s):
        """Distance for one ping at the given speed of sound; RangeError outside 200..4500 mm
        or when nothing reflected."""
        us = self.echo_us()
        if us > _NO_ECHO_US:
            raise RangeError("jsn-sr04t: no reflection (%d us)" % us)
        mm = us * sound_mm_per_s // 2000000
        if not _MIN_MM <= mm <= _MAX_MM:
            raise RangeError("jsn-sr04t: %d mm is outside the sensor's range" % mm)
        time.sleep_ms(_CYCLE_MS)
        return mm
