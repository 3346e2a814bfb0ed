"""A classroom air-quality node: a Sensirion SCD41 on I2C (or a Winsen MH-Z19B on a UART),
a battery. `Classroom` is the world it measures: a school day whose pupils breathe CO2
into a room aired in the breaks."""
import bisect
import math

from hil_tests.virtual.models.battery import BatteryADC
from hil_tests.virtual.models.mhz19b import MHZ19B
from hil_tests.virtual.models.scd4x import SCD4x

POWER = "battery"
INTERVAL = 300
SENSORS = {"chip": "scd4x", "i2c": 0, "scl": 22, "sda": 21}
UART_SENSORS = {"chip": "mhz19b", "uart": 2, "tx": 17, "rx": 16}
SETTINGS = {"co2_high": 1400, "co2_low": 1000, "temperature_offset_c": 1.5, "altitude_m": 0,
            "asc": True, "mode": "single_shot"}

HOUR_US = 3600 * 1000000
OUTDOOR_PPM = 420.0
# (start hour, pupils, air changes per hour): lessons with closed windows, breaks aired.
SCHOOL_DAY = ((0.0, 0, 0.4), (8.0, 25, 0.8), (9.5, 0, 6.0), (9.75, 25, 0.8), (11.25, 0, 6.0),
              (11.5, 25, 0.8), (12.5, 0, 3.0), (13.5, 25, 0.8), (15.0, 0, 2.0), (15.5, 0, 0.4))


class Classroom:
    """CO2 of a well-mixed room: dC/dt = n * G / V - ACH * (C - outdoor), solved exactly
    piece by piece (pupils and airing are constant within a piece). 10-12 year olds sitting
    exhale about 0.0043 L/s of CO2 each (ASTM D6245 ranges); the room holds 180 m³."""

    def __init__(self, days=7, volume_m3=180.0, per_pupil_l_s=0.0043, schedule=SCHOOL_DAY,
                 start_ppm=OUTDOOR_PPM, pupils_factor=1.0):
        self.volume_l = volume_m3 * 1000
        self.per_pupil = per_pupil_l_s
        self.starts = []       # virtual time of each piece's start (µs)
        self.pieces = []       # (C at start, steady state, ACH per µs)
        c = start_ppm
        for day in range(days):
            for i, (hour, pupils, ach) in enumerate(schedule):
                start = int((day * 24 + hour) * HOUR_US)
                end_hour = schedule[i + 1][0] if i + 1 < len(schedule) else 24.0
                end = int((day * 24 + end_hour) * HOUR_US)
                steady = OUTDOOR_PPM + (pupils * pupils_factor * per_pupil_l_s * 3600
                                        / (ach * self.volume_l) * 1e6)
                rate = ach / HOUR_US
                self.starts.append(start)
                self.pieces.append((c, steady, rate))
                c = steady + (c - steady) * math.exp(-rate * (end - start))
        self.peak = OUTDOOR_PPM + 25 * per_pupil_l_s * 3600 / (0.8 * self.volume_l) * 1e6

    def co2_ppm(self, vt):
        i = max(0, bisect.bisect_right(self.starts, vt) - 1)
        c0, steady, rate = self.pieces[i]
        return steady + (c0 - steady) * math.exp(-rate * (vt - self.starts[i]))

    def load(self, vt):
        """How much the pupils have warmed and moistened the air: 0..1."""
        return max(0.0, min(1.0, (self.co2_ppm(vt) - OUTDOOR_PPM) / (self.peak - OUTDOOR_PPM)))

    def temperature_c(self, vt):
        hour = (vt / HOUR_US) % 24
        heating = 2.0 if 6.5 <= hour < 16.0 else 0.0
        return 18.5 + heating + 1.5 * self.load(vt)

    def humidity_pct(self, vt):
        return 38.0 + 14.0 * self.load(vt)

    def crossings(self, high, low, start_us, end_us, step_us=10 * 1000000):
        """The true alarm changes [(vt, "high" | "normal")] with the app's hysteresis."""
        out, alarm, vt = [], False, start_us
        while vt <= end_us:
            c = self.co2_ppm(vt)
            if not alarm and c >= high:
                alarm = True
                out.append((vt, "high"))
            elif alarm and c < low:
                alarm = False
                out.append((vt, "normal"))
            vt += step_us
        return out


def models(co2_ppm=OUTDOOR_PPM, temperature_c=21.0, humidity_pct=45.0, volts=3.7,
           chip="scd4x", **sensor):
    """The chips of a classroom node. `co2_ppm` etc. are numbers or functions of virtual
    time; `sensor` goes to the CO2 chip's model (faults, calibration error, altitude...)."""
    if chip == "mhz19b":
        gas = MHZ19B(uart="uart%d" % UART_SENSORS["uart"], co2_ppm=co2_ppm, **sensor)
    else:
        gas = SCD4x(bus="i2c%d" % SENSORS["i2c"], co2_ppm=co2_ppm, temperature_c=temperature_c,
                    humidity_pct=humidity_pct, **sensor)
    return [BatteryADC(volts=volts), gas]
