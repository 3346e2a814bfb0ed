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
# reading.
#
# Thermometer (optional, sensors.thermometer: an SHT4x on I2C in the container's air): it
# gives temperature_c, the speed of sound for the JSN-SR04T (without it 20 °C is assumed, an
# error of 0.18 % of the distance per kelvin; the A02YYUW corrects its own), and the fire
# alarm: the "fire" event when the air reaches settings.fire_c (FIRE_C) or rises by
# settings.fire_rise_c (FIRE_RISE_C) within settings.fire_window_s (FIRE_WINDOW_S: at the
# default 600 s interval, since the previous reading); "fire_clear" once it has fallen
# FIRE_HYST_C below fire_c and back to within half the rise of where it started. A failing
# thermometer sets the aux fault bit (also after STUCK_READINGS identical results in a row)
# and leaves temperature_c null; the level is still measured, at the last temperature the
# thermometer gave.
from protocol import schema

PINGS = 5
OUTLIER_MM = 60        # a ping further than this from the median is an echo off a wall
EMPTIED_DROP_PCT = 30  # a fall of the level this large between two readings: emptied
FULL_PCT = 90          # default "full" threshold (set_thresholds [full %])
EVENT_EMPTIED = 1
EVENT_FIRE = 2
EVENT_FULL = 3
EVENT_FIRE_CLEAR = 15
FIRE_C = 70            # default alarm temperature, °C
FIRE_RISE_C = 10       # a rise this large within FIRE_WINDOW_S is an alarm too
FIRE_WINDOW_S = 900
FIRE_HYST_C = 5
WINDOW_MAX = 8         # readings kept for the rise (RTC memory is small)
STUCK_READINGS = 4     # identical thermometer results in a row: a frozen chip
T_SCHEMA_MIN, T_SCHEMA_MAX = -40, 85  # temperature_c on air


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


def fire_step(alarm, c10, now_s, window, fire_c10, rise_c10, span_s):
    """One temperature (tenths of °C) at now_s (s) into the fire alarm. window is a flat
    list [t, c10, t, c10, ...] of recent readings, updated in place; alarm is None or, while
    the alarm lasts, the temperature (tenths) below which it clears. Returns (alarm, changed)."""
    while window and (now_s - window[0] > span_s or now_s < window[0]
                      or len(window) >= 2 * WINDOW_MAX):
        del window[:2]
    base = min(window[1::2]) if window else c10
    window.append(now_s)
    window.append(c10)
    if alarm is None:
        if c10 >= fire_c10 or c10 - base >= rise_c10:
            return min(fire_c10 - FIRE_HYST_C * 10, base + rise_c10 // 2), True
        return None, False
    if c10 < alarm:
        return None, True
    return alarm, False


class App:
    kind = schema.FILL

    def __init__(self, cfg, state, machine):
        sensors = cfg["sensors"]
        settings = cfg["settings"]
        self._depth = settings.get("depth_mm", 1200)
        self._full = max(settings.get("offset_mm", 0), settings.get("blind_mm", 250))
        self._state = state
        self._fire = (int(settings.get("fire_c", FIRE_C) * 10),
                      int(settings.get("fire_rise_c", FIRE_RISE_C) * 10),
                      settings.get("fire_window_s", FIRE_WINDOW_S))
        self._air = 20.0  # the JSN-SR04T's speed of sound without a thermometer
        self._thermometer = None
        therm = sensors.get("thermometer")
        if therm:
            from sensors.sht4x import SHT4x
            self._thermometer = SHT4x(machine.I2C(therm.get("i2c", 0),
                                                  scl=machine.Pin(therm.get("scl", 22)),
                                                  sda=machine.Pin(therm.get("sda", 21))),
                                      therm.get("addr", 0x44))
        if sensors.get("chip", "jsnsr04t") == "a02yyuw":
            from sensors.a02yyuw import A02YYUW
            sensor = A02YYUW(machine.UART(sensors.get("uart", 2), 9600, tx=sensors.get("tx", 17),
                                          rx=sensors.get("rx", 16)))
            self._ping = sensor.distance_mm  # temperature-compensated by the module itself
        else:
            from sensors.jsnsr04t import JSNSR04T
            sensor = JSNSR04T(machine.Pin(sensors.get("trigger", 5)),
                              machine.Pin(sensors.get("echo", 18)))
            self._ping = lambda: sensor.distance_mm(speed_of_sound_mm_s(self._air))

    def measure(self, now_s):
        """(reading, events): never raises; a sensor fault becomes a fault bit."""
        from sensors.errors import SensorError
        reading = {"fault": 0}
        events = []
        pings = []
        fault = 0
        temperature = None
        if self._thermometer is not None:
            temperature = self._temperature(now_s, events)
        aux = schema.FAULT_AUX if self._thermometer is not None and temperature is None else 0
        if temperature is None:
            last = self._state.get("tw")  # a failed thermometer: the last air it measured
            self._air = last[-1] / 10 if last else 20.0
        else:
            self._air = temperature
            # the field holds -40..85 °C; a fire's heat beyond that goes in its event
            temperature = round(min(T_SCHEMA_MAX, max(T_SCHEMA_MIN, temperature)), 1)
        reading["temperature_c"] = temperature
        for _ in range(PINGS):
            try:
                pings.append(self._ping())
            except SensorError as e:
                fault |= e.fault
                if e.fault == schema.FAULT_TIMEOUT:
                    break  # a dead module will not answer the next ping either
        distance = robust_distance(pings)
        if distance is None:
            reading["fault"] = (fault or schema.FAULT_RANGE) | aux
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
        reading.update(level_pct=level, distance_mm=distance, fault=aux,
                       hours_to_full=hours_to_full(level, previous, now_s - state.get("t", now_s)))
        state["level"] = level
        state["t"] = now_s
        return reading, events

    def _temperature(self, now_s, events):
        """The air's temperature (°C), or None if the thermometer failed; fire events."""
        from sensors.errors import SensorError
        state = self._state
        try:
            c = self._thermometer.measure()[0]
        except SensorError as e:
            print("fill: thermometer:", e)
            return None
        c10 = int(round(c * 10))
        ticks = self._thermometer.ticks
        same = state.get("ts", [None, 0])
        same = [ticks, same[1] + 1 if same[0] == ticks else 1]
        state["ts"] = same
        if same[1] >= STUCK_READINGS:
            print("fill: thermometer: the same result %d times" % same[1])
            return None
        window = state.get("tw") or []
        fire_c10, rise_c10, span_s = self._fire
        alarm, changed = fire_step(state.get("fa"), c10, now_s, window, fire_c10, rise_c10,
                                   span_s)
        state["tw"] = window
        if alarm is None:
            state.pop("fa", None)
        else:
            state["fa"] = alarm
        if changed:
            events.append((EVENT_FIRE if alarm is not None else EVENT_FIRE_CLEAR,
                           int(round(c))))
        return c

    def command(self, name, arg):
        if name == "set_thresholds":
            if not 1 <= arg[0] <= 100:
                return 2  # bad argument
            self._state["full_pct"] = arg[0]
            return 0
        return None  # not this app's
