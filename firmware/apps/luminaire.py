# An LED street luminaire on mains power: a PZEM-004T meter on its supply, a BH1750 ambient
# light sensor, a PIR motion detector, and a PWM output filtered to the 1-10 V dimming input
# of the LED driver (duty = level: 100 % is 10 V; below 1 V the driver switches off).
#
# What it does, every tick (tick_ms, default 1 s; the node stays awake):
# - Dusk and dawn: the lamp goes on when the ambient light has stayed below ON_LUX for
#   DEBOUNCE_S and off when it has stayed above OFF_LUX as long (hysteresis against clouds,
#   debounce against headlights). At boot the current light decides at once.
# - A night profile: steps [minutes after dusk, level %]; the default (DEFAULT_PROFILE) is
#   100 % at dusk, 50 % four hours later and 70 % from 11 h after dusk, an hour before the
#   dawn of a 12-hour night. set_profile replaces it.
# - Motion boost ("lighting on demand"): while the lamp is dimmed (or off by its profile at
#   night) a PIR detection raises it to 100 % until motion_hold_s after the last detection;
#   the start of a boost is an event `motion` (value: the level before it) sent at once.
# - Metering every METER_EVERY_S: power and energy (the meter's own counter, kept in its
#   flash) and burn hours, counted while the lamp is commanded on and draws power.
# - Lamp failure: commanded on, settled (SETTLE_MS after a level change), but drawing less
#   than DEAD_FRACTION of the expected power for FAIL_SAMPLES samples in a row: fault bit
#   `lamp` and one event `lamp_failed` (value: the commanded level); power back: `lamp_ok`
#   (value: watts). The fault stays while the lamp is off: nothing proves it repaired.
# - Power band: the expected power at a level is nominal_power_w × (IDLE + (1 - IDLE) ×
#   level / 100) (driver losses that do not dim), within ± tolerance_pct; set_thresholds
#   [motion hold s, min W, max W] replaces the band with min..max at full level, scaled the
#   same way (min = max = 0: back to the nominal band). BAND_SAMPLES samples outside: fault
#   bit `power_band` and one event `power_band` (value: watts).
# - A meter that returns the same voltage, current, power, frequency and power factor
#   STUCK_SAMPLES times in a row is frozen (mains voltage always wanders): fault `range`.
# - The ambient light sensor failing (no answer, or no dusk or dawn for MAX_PHASE_MS) sets
#   fault bit `aux`; the lamp keeps its state until the sensor answers again.
# - dim_override [level, minutes] holds a level (day or night) for that long; 0 minutes
#   clears it. Profile and thresholds are kept in flash (overrides.json, key "lum"), burn
#   hours too, hourly.
#
# Algorithms are plain functions at the top (CPython and MicroPython); App ties them to
# the drivers. Time is the app's own millisecond clock from ticks_ms, kept in RTC state.
from protocol import schema

ON_LUX = 20
OFF_LUX = 50
DEBOUNCE_S = 120
MOTION_HOLD_S = 60
LIGHT_EVERY_MS = 5000
METER_EVERY_MS = 10000
MIN_LEVEL = 10          # 1 V on a 1-10 V driver: its lowest light output
IDLE = 0.05             # share of full power a driver draws whatever the level
DEAD_FRACTION = 0.3     # below this share of the expected power the lamp is dead
FAIL_SAMPLES = 3
BAND_SAMPLES = 3
SETTLE_MS = 3000        # a driver ramps for about a second after a change of level
STUCK_SAMPLES = 6
MAX_PHASE_MS = 20 * 3600000  # no dusk or dawn for this long: the light sensor is lying


def effective_level(level):
    """What a 1-10 V driver can do with a level: off, or MIN_LEVEL..100."""
    return 0 if level <= 0 else min(100, max(MIN_LEVEL, int(level)))


def expected_power_w(full_w, level):
    level = effective_level(level)
    return full_w * (IDLE + (1 - IDLE) * level / 100) if level else 0.0


def power_band(level, nominal_w, tolerance_pct, min_w=0, max_w=0):
    """(low, high) watts expected at a level: nominal ± tolerance, or min..max at full
    level when either is set, scaled to the level."""
    scale = expected_power_w(1.0, level)
    if min_w or max_w:
        return min_w * scale, (max_w or 65535) * scale
    return nominal_w * scale * (1 - tolerance_pct / 100), nominal_w * scale * (1 + tolerance_pct / 100)


def daylight_step(dark, pending_ms, lux, now_ms, on_lux, off_lux, debounce_ms):
    """One ambient light sample through hysteresis and debounce: (dark, pending_ms,
    changed); pending_ms is when the light first crossed toward the other state."""
    if not (lux > off_lux if dark else lux < on_lux):
        return dark, None, False
    if pending_ms is None:
        pending_ms = now_ms
    if now_ms - pending_ms >= debounce_ms:
        return not dark, None, True
    return dark, pending_ms, False


# 100 % at dusk, 50 % after 4 h, 70 % from 11 h: an hour before the dawn of a 12-hour night
DEFAULT_PROFILE = [[0, 100], [240, 50], [660, 70]]


def profile_level(profile, minutes):
    """The level of the last step that has begun (the first step's before it)."""
    level = profile[0][1]
    for start, step_level in profile:
        if minutes < start:
            break
        level = step_level
    return level


def lamp_health(failed, low_count, level, power_w, expected_w, samples=FAIL_SAMPLES):
    """One settled meter sample: (failed, low_count, event code or None)."""
    if level <= 0 or power_w is None:
        return failed, low_count, None
    if power_w >= DEAD_FRACTION * expected_w:
        return False, 0, (10 if failed else None)       # lamp_ok
    low_count += 1
    return (failed or low_count >= samples), low_count, (
        9 if not failed and low_count >= samples else None)  # lamp_failed


def band_step(outside, count, power_w, low, high, samples=BAND_SAMPLES):
    """One settled sample of a burning lamp: (outside, count, event code or None); the
    state flips after `samples` samples in a row on the other side."""
    if (not low <= power_w <= high) == outside:
        return outside, 0, None
    count += 1
    if count < samples:
        return outside, count, None
    return not outside, 0, (None if outside else 11)    # power_band


class App:
    kind = schema.LUMINAIRE

    def __init__(self, cfg, state, hw):
        import time
        from sensors.bh1750 import BH1750
        from sensors.pzem004t import PZEM004T
        self._time = time
        s, g = cfg["sensors"], cfg["settings"].get
        # The meter's manual gives no turnaround time; 200 ms to the first byte is ample.
        self._meter = PZEM004T(hw.UART(s.get("uart", 2), baudrate=9600, tx=s.get("tx", 17),
                                       rx=s.get("rx", 16), timeout=200, timeout_char=20),
                               s.get("meter_addr", 0xF8))
        self._light = BH1750(hw.I2C(s.get("i2c", 0), scl=hw.Pin(s.get("scl", 22)),
                                    sda=hw.Pin(s.get("sda", 21)), freq=100000),
                             s.get("light_addr", 0x23))
        self._pir = hw.Pin(s.get("pir", 27), hw.Pin.IN)
        self._pwm = hw.PWM(hw.Pin(s.get("dim", 25)), freq=1000, duty_u16=0)
        self.tick_ms = g("tick_ms", 1000)
        self._nominal, self._tol = g("nominal_power_w", 60), g("tolerance_pct", 20)
        self._lux = (g("on_lux", ON_LUX), g("off_lux", OFF_LUX), g("debounce_s", DEBOUNCE_S) * 1000)
        self._st = st = state
        # What downlinks set, kept in overrides.json through the node's config:
        # [profile, [hold s, min W, max W], burn s]
        self._profile, th, burn = cfg.get("lum") or (None, None, 0)
        self._th = th or [g("motion_hold_s", MOTION_HOLD_S), 0, 0]
        self._burn = max(burn, st.get("bs", 0)) * 1000
        self._ms, self._last = st.get("clk", 0), time.ticks_ms()
        self._dusk = st.get("du")
        self._override, self._failed = st.get("ov"), st.get("lf", False)
        self._outside, self._low, self._band, self._same = False, 0, 0, 0
        self._events, self._boost, self._pending, self._key = [], -1, None, None
        self._level = self._meter_fault = 0
        self._power = self._energy = self._meter_at = None
        now = self._changed = self._lux_at = self._phase = self._ms
        self._dark, self._base, self._held = st.get("dk", True), 0, False
        self._update_light(now, True)
        if self._dark and self._dusk is None:
            self._dusk = now  # booted in the night: the profile counts from here
        self._apply(now)

    def _save(self):
        from node.overrides import save_override
        save_override("lum", [self._profile, self._th, self._burn // 1000])

    def _clock(self):
        t = self._time.ticks_ms()
        self._ms += max(0, self._time.ticks_diff(t, self._last))
        self._last = t
        return self._ms

    def _update_light(self, now, boot=False):
        from sensors.errors import SensorError
        self._lux_at, self._aux = now, False
        try:
            lux = self._light.lux()
        except SensorError as e:
            print("luminaire:", e)
            lux, self._aux = None, True
        if lux is not None:
            on, off, debounce = self._lux
            if boot:  # at boot the light decides at once, without the debounce
                self._dark = lux < (on + off) / 2
                return
            dark, self._pending, changed = daylight_step(self._dark, self._pending, lux, now,
                                                         on, off, debounce)
            if changed:
                if dark:
                    self._dusk = now
                self._dark, self._phase = dark, now
            elif now - self._phase > MAX_PHASE_MS:
                self._aux = True  # a whole day without dusk or dawn: the reading is frozen

    def _sample_meter(self, now):
        from sensors.errors import SensorError
        fault = key = power = energy = None
        try:
            v = self._meter.values()
            key, power, energy = (v[0], v[1], v[2], v[4], v[5]), v[2], v[3]
        except SensorError as e:
            print("luminaire:", e)
            fault = e.fault
        self._same = self._same + 1 if key is not None and key == self._key else 0
        self._key = key
        if self._same >= STUCK_SAMPLES - 1:  # mains voltage always wanders: a frozen meter
            fault, power, energy = schema.FAULT_RANGE, None, None
        self._meter_fault, self._power, self._energy = fault or 0, power, energy
        last, self._meter_at, level = self._meter_at, now, self._level
        if power is None or now - self._changed < SETTLE_MS:
            return
        expected = expected_power_w(self._nominal, level)
        if level and last is not None and power >= DEAD_FRACTION * expected:
            hour = self._burn // 3600000
            self._burn += min(now - last, 2 * METER_EVERY_MS)
            if self._burn // 3600000 != hour:
                self._save()  # once a burning hour: the flash lasts
        self._failed, self._low, event = lamp_health(self._failed, self._low, level, power,
                                                     expected)
        if event:
            self._events.append((event, level if event == 9 else int(power)))
        if level and not self._failed:
            th = self._th
            low, high = power_band(level, self._nominal, self._tol, th[1], th[2])
            self._outside, self._band, event = band_step(self._outside, self._band, power,
                                                         low, high)
            if event:
                self._events.append((event, int(power)))

    def _apply(self, now):
        """Set the output for now; True if the lamp went on or off. Keeps the level without
        a motion boost (_base) and whether an override holds it (_held)."""
        ov, held = self._override, False
        if ov and now >= ov[1]:
            self._override = ov = None
        if ov:
            level, held = ov[0], True
        elif not self._dark:
            level = 0
        else:
            level = profile_level(self._profile or DEFAULT_PROFILE,
                                  (now - self._dusk) // 60000 if self._dusk is not None else 0)
        self._base, self._held = level, held
        if not held and self._dark and now < self._boost:
            level = 100
        level = effective_level(level)
        if level == self._level:
            return False
        self._pwm.duty_u16(level * 65535 // 100)  # 100 % duty: 10 V after the filter
        switched = not level or not self._level
        self._level, self._changed, self._low, self._band = level, now, 0, 0
        return switched

    def tick(self, now_ms):
        """Every tick_ms: motion, light, level, meter. True: report at once."""
        try:
            now = self._clock()
            if self._pir.value() and self._th[0]:
                if not self._held and self._dark and self._base < 100 and now >= self._boost:
                    self._events.append((12, self._base))  # motion: the level before the boost
                self._boost = now + self._th[0] * 1000
            if now - self._lux_at >= LIGHT_EVERY_MS:
                self._update_light(now)
            report = self._apply(now)
            if self._meter_at is None or now - self._meter_at >= METER_EVERY_MS:
                self._sample_meter(now)
            return report or bool(self._events)
        except Exception as e:  # the lamp must keep its schedule whatever one sample did
            print("luminaire: tick:", repr(e))
            return False

    def measure(self, now_s):
        now = self._clock()
        self._apply(now)
        if self._meter_at is None or now - self._meter_at >= 1000:
            self._sample_meter(now)
        events, self._events = self._events, []
        st = self._st
        st["clk"], st["du"], st["dk"] = now, self._dusk, self._dark
        st["ov"], st["lf"], st["bs"] = self._override, self._failed, self._burn // 1000
        power = self._power
        return {"power_w": None if power is None else min(6553.5, power),
                "energy_wh": self._energy, "level_pct": self._level,
                "burn_h": self._burn // 3600000,
                "fault": (self._meter_fault | (16 if self._failed else 0)
                          | (32 if self._outside else 0) | (64 if self._aux else 0))}, events

    def command(self, name, arg):
        now = self._clock()
        if name == "dim_override":
            if arg[0] > 100:
                return 2
            self._override = [arg[0], now + arg[1] * 60000] if arg[1] else None
        elif name == "set_profile":
            self._profile = arg  # protocol.command checked it: 1..8 steps in time order
            self._save()
        elif name == "set_thresholds":
            if len(arg) > 3 or (len(arg) == 3 and arg[2] and arg[1] > arg[2]):
                return 2
            self._th = (arg + [0, 0])[:3]
            self._outside = False
            self._save()
        else:
            return None  # not ours
        self._apply(now)
        return 0
