# Parking-space occupancy from a QMC5883L magnetometer in the pavement: a car's steel bends
# the Earth's field at the sensor. Plain functions for the algorithms (tested on CPython
# and MicroPython); App ties them to the driver and keeps its state in the node's RTC state.
#
# Baseline: the empty space's field, the mean of _CAL_SAMPLES samples _CONFIRM_MS apart, taken
# at the first wake after install or after the `recalibrate` command (acknowledged at once;
# the event "recalibrated" with the baseline's magnitude in µT x 10 follows from the next
# wake). If the samples spread more than _CAL_SPREAD_NT (a car passing) the next wake tries
# again. The baseline is kept in flash (parking.json) too: a power loss must not make the
# node calibrate over a parked car.
# Occupancy: the magnitude of the deviation from the baseline, with hysteresis: occupied at
# _OCCUPIED_NT or more, free again at _FREE_NT or less (set_thresholds [occupied, free] in
# µT x 10). A car in the neighbouring space moves the field by a few µT: below both.
# Debounce: a change needs _DEBOUNCE samples that point to it out of at most _VOTES, taken
# _CONFIRM_MS apart within the same wake, so the event leaves at the first wake after the
# change while traffic passing over the sensor (at most 1.5 s: two samples) is rejected, and
# a car passing while a change is being confirmed does not put the event off by a whole
# interval. One sample is enough when it points to the current state and the field is
# where the last wake left it (within _MOVED_NT); when something moved (a car arrived or
# left, here or next door, or traffic is passing at that very moment) the wake takes the
# vote. Before, with one sample always enough and every sample having to agree, traffic
# over the sensor at the first wake after a departure put about 2 % of the events off by
# a whole interval.
# Drift: while free, the baseline follows the field by 1/_TRACK_DIV of the difference per
# wake (a 16 min time constant at a 30 s interval): the sensor's offset drifting with
# temperature, a neighbour parked for hours. Written to flash when it moved _PERSIST_NT.
# Uplinks: a reading with an "occupied"/"free" event at every change (the free event's value:
# the minutes the car stayed; the occupied one's: the deviation in µT x 10); otherwise a
# heartbeat reading every settings.heartbeat_min minutes (default 60); None in between.
# Overstay: for spaces with settings.time_limit_min, the event once per stay when the limit
# is passed, and the reading's overstay flag while it lasts. A sensor fault is reported when
# it appears, at the heartbeat while it lasts, and at once when it clears.
#
# Names are few on purpose: every new identifier costs an interned string in RAM, and the
# node's heap is small. The tuning constants are const() (no name at run time).
from protocol import schema

try:
    from micropython import const
except ImportError:  # CPython, for the tests of the functions below
    def const(x):
        return x

_SAMPLES = const(4)          # conversions averaged per sample (200 Hz: 20 ms)
_OCCUPIED_NT = const(8000)   # deviation that means a car (8.0 µT)
_FREE_NT = const(5000)       # deviation at or below which the space is free again (5.0 µT)
_DEBOUNCE = const(3)         # samples that must point to a change
_VOTES = const(5)            # samples a wake may take to confirm one
_MOVED_NT = const(2000)      # the field moved since the last wake: vote even if it agrees
_CONFIRM_MS = const(1000)    # between them
_CAL_SAMPLES = const(5)      # samples averaged into a baseline
_CAL_SPREAD_NT = const(1500)  # no calibration sample may be further than this from their mean
_TRACK_DIV = const(32)       # baseline drift tracking while free, per wake
_PERSIST_NT = const(1000)    # keep the tracked baseline in flash when it moved this far
_HEARTBEAT_MIN = const(60)
# events (PROTOCOL.md section 5)
_OCCUPIED = const(4)
_FREE = const(5)
_OVERSTAY = const(6)
_RECALIBRATED = const(13)
# state["o"]
_OCC = const(0)
_SINCE = const(1)
_WARNED = const(2)
_SENT = const(3)


def deviation_nt(a, b):
    """Magnitude of the difference of two fields (x, y, z), nT: the integer square root,
    exact on every runtime (the ESP32's floats are single precision: they only give
    Newton's method its starting point, from above)."""
    x = a[0] - b[0]
    y = a[1] - b[1]
    z = a[2] - b[2]
    n = x * x + y * y + z * z
    if n <= 0:
        return 0
    x = int(n ** 0.5 * 1.0001) + 2
    while True:
        y = (x + n // x) // 2
        if y >= x:
            return x
        x = y


def classify(occupied, d, high=_OCCUPIED_NT, low=_FREE_NT):
    """The state one deviation d points to, with hysteresis between the thresholds."""
    return d > low if occupied else d >= high


def debounced(occupied, ds, high=_OCCUPIED_NT, low=_FREE_NT):
    """The new state: changed if at least _DEBOUNCE of the deviations point to it."""
    n = 0
    for d in ds:
        if classify(occupied, d, high, low) != occupied:
            n += 1
    return occupied != (n >= _DEBOUNCE)


def track(b, a, n=_TRACK_DIV):
    """Baseline b moved 1/n of the way to the field a, by at least 1 nT while they differ."""
    out = []
    for i in range(3):
        x = a[i] - b[i]
        out.append(b[i] + ((x + n - 1) // n if x > 0 else -((n - 1 - x) // n)))
    return out


def baseline_of(ds):
    """The mean of the samples ds, or None if one lies further than _CAL_SPREAD_NT from it
    (a car passed while they were taken)."""
    n = len(ds)
    if not n:
        return None
    b = [sum(a[i] for a in ds) // n for i in range(3)]
    for a in ds:
        if deviation_nt(a, b) > _CAL_SPREAD_NT:
            return None
    return b


class App:
    kind = schema.PARKING

    def __init__(self, cfg, state, machine):
        import sensors.qmc5883l  # noqa: F401 (imported while the heap is whole)
        sensors = cfg["sensors"]
        settings = cfg["settings"]
        self._i2c = machine.I2C(sensors.get("i2c", 0), scl=machine.Pin(sensors.get("scl", 22)),
                                sda=machine.Pin(sensors.get("sda", 21)), freq=400000)
        self._addr = sensors.get("addr", 0x0D)
        self._sensor = None  # the driver talks to the chip when created: in measure
        # (time limit in minutes, 0 for none; heartbeat in seconds)
        self._limit = (settings.get("time_limit_min", 0),
                       settings.get("heartbeat_min", _HEARTBEAT_MIN) * 60)
        self._state = state
        if "b" not in state and "rc" not in state:
            # After a power loss: the baseline and thresholds kept in flash, if any.
            import json
            try:
                with open("parking.json") as f:
                    saved = json.loads(f.read())
                state["b"] = state["p"] = [int(v) for v in saved["b"][:3]]
                if "th" in saved:
                    state["th"] = [int(v) for v in saved["th"][:2]]
            except (OSError, ValueError, KeyError, TypeError, IndexError):
                state.pop("b", None)  # none, or torn: calibrate

    def _save(self):
        import json
        import os
        state = self._state
        saved = {}
        for key in ("b", "th"):
            if key in state:
                saved[key] = state[key]
        try:
            with open("parking.new", "w") as f:
                f.write(json.dumps(saved))
            os.rename("parking.new", "parking.json")
            state["p"] = state.get("b")
        except OSError as e:
            print("parking: cannot keep the calibration in flash:", e)

    def _samples(self, n, b=None, occupied=False, high=0, low=0, last=None):
        """Up to n samples _CONFIRM_MS apart, the first at once. Given a baseline b, stop
        when the first sample points to the current state and lies within _MOVED_NT of
        `last` (nothing to confirm), and once the vote is decided: _DEBOUNCE samples for a
        change, or too many against it."""
        import time
        out = []
        k = 0  # samples that point to a change
        while len(out) < n:
            if out:
                if b is not None:
                    if classify(occupied, deviation_nt(out[-1], b), high, low) != occupied:
                        k += 1
                    if k >= _DEBOUNCE or len(out) - k > n - _DEBOUNCE:
                        break
                    if k == 0 and last is not None and deviation_nt(out[0], last) <= _MOVED_NT:
                        break
                time.sleep_ms(_CONFIRM_MS)
            if self._sensor is None:
                from sensors.qmc5883l import QMC5883L
                self._sensor = QMC5883L(self._i2c, self._addr)
            out.append(self._sensor.field_nt(_SAMPLES))
        return out

    def measure(self, now_s):
        """(reading or None, events): never raises; a sensor fault becomes a fault bit."""
        from sensors.errors import SensorError
        state = self._state
        fault = state.get("f", 0)
        # [occupied 0/1, since (s), overstay reported 0/1, last uplink (s) or None]
        o = state.get("o") or [0, now_s, 0, None]
        state["o"] = o
        events = []
        try:
            return self._measure(now_s, fault, o, events)
        except SensorError as e:
            self._sensor = None  # set it up again next time
            state["f"] = e.fault
            if e.fault != fault or o[_SENT] is None or now_s - o[_SENT] >= self._limit[1]:
                o[_SENT] = now_s
                return {"occupied": None, "minutes": None, "field_ut": None, "overstay": None,
                        "fault": e.fault}, events
            return None, events

    def _measure(self, now_s, fault, o, events):
        state = self._state
        send = fault != 0  # recovered: say so at once
        if "b" not in state:
            b = baseline_of(self._samples(_CAL_SAMPLES))
            state["f"] = 0
            if b is None:  # traffic over the sensor: try again next wake
                if send:
                    o[_SENT] = now_s
                    return {"occupied": None, "minutes": None, "field_ut": None,
                            "overstay": None, "fault": 0}, events
                return None, events
            state.pop("rc", None)
            if o[_OCC]:
                events.append((_FREE, (now_s - o[_SINCE]) // 60))
            o[_OCC], o[_SINCE], o[_WARNED] = 0, now_s, 0
            state["b"] = state["l"] = b  # the field now: no vote at once (watchdog)
            events.append((_RECALIBRATED, min(deviation_nt(b, (0, 0, 0)) // 100, 65535)))
            self._save()
            send = True
        high, low = _OCCUPIED_NT, _FREE_NT
        if "th" in state:
            high, low = state["th"][0] * 100, state["th"][1] * 100  # µT x 10 -> nT
        occupied = bool(o[_OCC])
        b = state["b"]
        # One sample; if it points to a change or the field moved, up to _VOTES - 1 more.
        samples = self._samples(_VOTES, b, occupied, high, low, state.get("l"))
        state["f"] = 0
        state["l"] = samples[-1]
        ds = [deviation_nt(a, b) for a in samples]
        if debounced(occupied, ds, high, low) != occupied:
            if occupied:
                events.append((_FREE, (now_s - o[_SINCE]) // 60))
            else:
                events.append((_OCCUPIED, min(ds[-1] // 100, 65535)))
            occupied = not occupied
            o[_OCC], o[_SINCE], o[_WARNED] = int(occupied), now_s, 0
            send = True
        elif not occupied and ds[-1] < high:
            state["b"] = track(b, samples[-1])
            if deviation_nt(state["b"], state.get("p") or b) >= _PERSIST_NT:
                self._save()
        n = (now_s - o[_SINCE]) // 60  # minutes in this state
        limit = self._limit[0]
        over = bool(occupied and limit and n >= limit)
        if over and not o[_WARNED]:
            events.append((_OVERSTAY, n))
            o[_WARNED] = 1
            send = True
        if send or o[_SENT] is None or now_s - o[_SENT] >= self._limit[1]:
            o[_SENT] = now_s
            return {"occupied": occupied, "minutes": min(n, 65535),
                    "field_ut": min(ds[-1], 6553500) / 1000, "overstay": over,
                    "fault": 0}, events
        return None, events

    def command(self, name, arg):
        state = self._state
        if name == "set_thresholds":
            # [occupied µT x 10, free µT x 10]: the free one strictly lower
            if not (isinstance(arg, list) and len(arg) == 2
                    and all(isinstance(v, int) and not isinstance(v, bool) for v in arg)
                    and 0 < arg[1] < arg[0] <= 65535):
                return 2  # bad argument
            state["th"] = [arg[0], arg[1]]
            self._save()
            return 0
        if name == "recalibrate":
            if arg is not None:
                return 2
            state.pop("b", None)
            state["rc"] = 1  # a new baseline was asked for: not the one in flash
            return 0
        return None  # not this app's
