# Fill level of a waste container or glass bubble from an ultrasonic rangefinder above it
# (JSN-SR04T trigger/echo, or A02YYUW on a UART). Plain functions for the algorithms
# (tested on CPython and MicroPython); App ties them to the driver and keeps what it needs
# between cycles in the node's RTC state.
#
# Each reading is the median of PINGS pings after dropping those more than OUTLIER_MM from
# the first median (echoes off the walls); the level is 0 % with the floor at depth_mm and
# 100 % with the contents at the mounting offset or the blind zone, whichever is lower.
# Events: "emptied" when the level falls by EMPTIED_DROP_PCT between two readings, "full"
# once when it crosses the threshold. hours_to_full extrapolates the rise since the last
# reading. These sensors carry no thermometer: temperature_c is null and the JSN-SR04T's
# distance assumes 20 °C (an error of 0.18 % per kelvin).
from protocol import schema

PINGS = 5
OUTLIER_MM = 60        # a ping further than this from the median is an echo off a wall
EMPTIED_DROP_PCT = 30  # a fall of the level this large between two readings: emptied
FULL_PCT = 90          # default "full" threshold (set_thresholds [full %])
EVENT_EMPTIED = 1
EVENT_FULL = 3


def speed_of_sound_mm_s(temperature_c):
    # Dry air: 331.3 m/s at 0 °C plus 0.606 m/s per kelvin (20 °C: 343.4 m/s).
    return int((331.3 + 0.606 * temperature_c) * 1000)


def robust_distance(pings):
    """Median of the pings after dropping the ones far from the first median; None if
    fewer than half remain."""
    if not pings:
        return None
    ordered = sorted(pings)
    median = ordered[len(ordered) // 2]
    kept = sorted(p for p in pings if abs(p - median) <= OUTLIER_MM)
    if len(kept) * 2 < len(pings):
        return None
    n = len(kept)
    return kept[n // 2] if n % 2 else (kept[n // 2 - 1] + kept[n // 2]) // 2


def fill_pct(distance_mm, depth_mm, full_mm):
    """Fill level in percent: 0 with the sensor seeing the floor at depth_mm, 100 with the
    contents at full_mm below the sensor (the mounting offset or the blind zone)."""
    span = depth_mm - full_mm
    level = (depth_mm - distance_mm) * 100.0 / span
    return min(100.0, max(0.0, level))


def hours_to_full(level, previous_level, elapsed_s):
    """Hours until 100 % at the rate seen since the previous reading; None if not rising."""
    if previous_level is None or elapsed_s <= 0 or level <= previous_level:
        return None
    rate_per_h = (level - previous_level) * 3600.0 / elapsed_s
    hours = (100.0 - level) / rate_per_h if rate_per_h > 0 else 65535
    return 65535 if hours >= 65535 else int(hours)  # a crawl: "not soon", not infinity


class App:
    kind = schema.FILL

    def __init__(self, cfg, state, machine):
        sensors = cfg["sensors"]
        settings = cfg["settings"]
        self._depth = settings.get("depth_mm", 1200)
        self._full = max(settings.get("offset_mm", 0), settings.get("blind_mm", 250))
        self._state = state
        if sensors.get("chip", "jsnsr04t") == "a02yyuw":
            from sensors.a02yyuw import A02YYUW
            sensor = A02YYUW(machine.UART(sensors.get("uart", 2), 9600, tx=sensors.get("tx", 17),
                                          rx=sensors.get("rx", 16)))
            self._ping = sensor.distance_mm  # temperature-compensated by the module itself
        else:
            from sensors.jsnsr04t import JSNSR04T
            sensor = JSNSR04T(machine.Pin(sensors.get("trigger", 5)),
                              machine.Pin(sensors.get("echo", 18)))
            self._ping = lambda: sensor.distance_mm(speed_of_sound_mm_s(20))

    def measure(self, now_s):
        """(reading, events): never raises; a sensor fault becomes a fault bit."""
        from sensors.errors import SensorError
        reading = {"fault": 0}
        events = []
        pings = []
        fault = 0
        for _ in range(PINGS):
            try:
                pings.append(self._ping())
            except SensorError as e:
                fault |= e.fault
                if e.fault == schema.FAULT_TIMEOUT:
                    break  # a dead module will not answer the next ping either
        distance = robust_distance(pings)
        if distance is None:
            reading["fault"] = fault or schema.FAULT_RANGE
            return reading, events
        level = fill_pct(distance, self._depth, self._full)
        state = self._state
        previous = state.get("level")
        if previous is not None and previous - level >= EMPTIED_DROP_PCT:
            events.append((EVENT_EMPTIED, int(previous)))  # with the level before
            state.pop("full", None)
        threshold = state.get("full_pct", FULL_PCT)
        if level >= threshold and not state.get("full"):
            events.append((EVENT_FULL, int(level)))
            state["full"] = 1
        reading.update(level_pct=level, distance_mm=distance, temperature_c=None,
                       hours_to_full=hours_to_full(level, previous, now_s - state.get("t", now_s)))
        state["level"] = level
        state["t"] = now_s
        return reading, events

    def command(self, name, arg):
        if name == "set_thresholds":
            if not 1 <= arg[0] <= 100:
                return 2  # bad argument
            self._state["full_pct"] = arg[0]
            return 0
        return None  # not this app's
