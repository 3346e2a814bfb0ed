"""Sensirion SCD4x (SCD40 / SCD41) CO2, temperature and humidity sensor on I2C, from its
datasheet (version 1.3, September 2022).

Bus behaviour:
- Address 0x62. A command is a 16-bit word; argument and answer words each carry a CRC-8
  (polynomial 0x31, init 0xFF; section 3.11). An argument with a bad CRC is not executed.
- After a command the chip is busy for its execution time (table 9) and does not acknowledge
  its address (BusFault ENODEV) until it is over; the answer of a read command is then
  ready for one read transfer.
- read_measurement with no new data in the buffer: NACK (section 3.5.2). The buffer holds
  the newest measurement and empties on read-out. get_data_ready_status: low 11 bits are 0
  when there is no data.
- In a periodic mode only read_measurement, get_data_ready_status, stop_periodic_measurement
  and set_ambient_pressure are allowed (table 9); other commands are not acknowledged.
- Periodic mode measures every 5 s, low-power periodic every 30 s, measure_single_shot
  (SCD41 only) once, 5000 ms; the first shot after power-up reads off (3.10: discard it).
- Settings (temperature offset, altitude, ASC) are in RAM, default 4 °C / 0 m / ASC on,
  and survive power-cycles only after persist_settings (800 ms, counted in eeprom_writes).
- perform_forced_recalibration (idle, 400 ms): the answer is the correction + 0x8000, or
  0xFFFF if it failed: the datasheet requires the sensor to have been measuring for more than
  3 minutes before FRC (3.7.1).
- ASC (3.7): when enabled, the lowest reading of each period of measuring (44 h at first,
  then 156 h) is taken to be 400 ppm.

The world (scenario inputs, numbers or functions of virtual time in µs): co2_ppm,
temperature_c and humidity_pct of the room; pressure_pa (default from altitude_m).
The sensor itself: self_heating_c (how much warmer than the room the chip runs in this
enclosure), calibration_error_ppm (its offset before any FRC/ASC), noise (repeatability,
datasheet +-10 ppm), pressure sensitivity as an ideal gas: an NDIR cell counts molecules,
so an uncompensated reading scales with the pressure the chip assumes.

Faults (`fault`): "nack" (no ACK at all), "crc" (answers with corrupted CRCs), "stuck" (the
host never answers: a hung bus), "stuck_value" (the same measurement forever),
"out_of_range" (CO2 word 0xFFFF, above the 40000 ppm output range), "not_ready" (the
measurement never completes), "frc_fail" (every FRC answers 0xFFFF).
"""
import errno
import math
import random

from hil_tests.virtual.board import BusFault
from hil_tests.virtual.models import Model
from hil_tests.virtual.models import sensirion_crc8 as crc8

ADDRESS = 0x62
MS = 1000
PERIODIC_US = 5000 * MS
LOW_POWER_US = 30000 * MS
SINGLE_SHOT_US = 5000 * MS
FRC_MIN_US = 180 * 1000 * MS
ASC_INITIAL_US = 44 * 3600 * 1000 * MS
ASC_STANDARD_US = 156 * 3600 * 1000 * MS
FIRST_SHOT_ERROR_PPM = 60    # the reading the datasheet says to discard is off

# command: (execution ms, argument words, answer words, allowed while measuring)
COMMANDS = {
    0x21B1: (0, 0, 0, False),      # start_periodic_measurement
    0xEC05: (1, 0, 3, True),       # read_measurement
    0x3F86: (500, 0, 0, True),     # stop_periodic_measurement
    0x241D: (1, 1, 0, False),      # set_temperature_offset
    0x2318: (1, 0, 1, False),      # get_temperature_offset
    0x2427: (1, 1, 0, False),      # set_sensor_altitude
    0x2322: (1, 0, 1, False),      # get_sensor_altitude
    0xE000: (1, 1, 0, True),       # set_ambient_pressure
    0x362F: (400, 1, 1, False),    # perform_forced_recalibration
    0x2416: (1, 1, 0, False),      # set_automatic_self_calibration_enabled
    0x2313: (1, 0, 1, False),      # get_automatic_self_calibration_enabled
    0x21AC: (0, 0, 0, False),      # start_low_power_periodic_measurement
    0xE4B8: (1, 0, 1, True),       # get_data_ready_status
    0x3615: (800, 0, 0, False),    # persist_settings
    0x3682: (1, 0, 3, False),      # get_serial_number
    0x3639: (10000, 0, 1, False),  # perform_self_test
    0x3632: (1200, 0, 0, False),   # perform_factory_reset
    0x3646: (20, 0, 0, False),     # reinit
    0x219D: (5000, 0, 0, False),   # measure_single_shot (SCD41)
    0x2196: (50, 0, 0, False),     # measure_single_shot_rht_only (SCD41)
    0x36E0: (1, 0, 0, False),      # power_down (SCD41)
    0x36F6: (20, 0, 0, False),     # wake_up (SCD41)
}
SCD41_ONLY = (0x219D, 0x2196, 0x36E0, 0x36F6)
DEFAULTS = {"offset": 4.0, "altitude": 0, "asc": 1}


def pressure_at(altitude_m):
    """Standard atmosphere (ISO 2533) below 11 km, in Pa."""
    return 101325.0 * (1 - 2.25577e-5 * altitude_m) ** 5.25588


def saturation_hpa(t):
    """Magnus formula over water (WMO): saturation vapour pressure at t °C."""
    return 6.112 * math.exp(17.62 * t / (243.12 + t))


def _value(v, vt):
    return v(vt) if callable(v) else v


class SCD4x(Model):
    def __init__(self, bus="i2c0", variant="scd41", co2_ppm=420.0, temperature_c=21.0,
                 humidity_pct=45.0, altitude_m=0, pressure_pa=None, self_heating_c=1.5,
                 calibration_error_ppm=0.0, noise_ppm=10.0, seed=1, serial=0xF8969F073BB4):
        self.bus = bus
        self.variant = variant
        self.co2_ppm = co2_ppm
        self.temperature_c = temperature_c
        self.humidity_pct = humidity_pct
        self.altitude_m = altitude_m
        self.pressure_pa = pressure_pa
        self.self_heating_c = self_heating_c
        self.noise_ppm = noise_ppm
        self.serial = serial
        self.rng = random.Random(seed)
        self.eeprom = dict(DEFAULTS)
        self.eeprom_writes = 0
        self.cal_offset = calibration_error_ppm  # the chip's own error, changed by FRC/ASC
        self.frc_log = []        # (vt, reference, correction)
        self.measurements = []   # (vt, true ppm, reported ppm): the ground truth for tests
        self.commands = []       # (vt, command word)
        self.power_on(0)

    def bus_keys(self):
        return [("i2c", self.bus, ADDRESS)]

    # ------------------------------------------------------------ chip state

    def power_on(self, vt):
        self.settings = dict(self.eeprom)
        self.pressure_set = None
        self.mode = "idle"
        self.busy_until = vt
        self.answer = None        # words waiting for the read transfer
        self.buffer = None        # the newest measurement (3 words), emptied on read-out
        self.frozen = None
        self.last_words = None
        self.next_us = None       # when the periodic mode's next measurement completes
        self.shot_until = None
        self.shots = 0
        self.first_measured = None
        self.asc_start = None
        self.asc_min = None
        self.asc_periods = 0

    def _assumed_pressure(self):
        if self.pressure_set is not None:
            return self.pressure_set
        return pressure_at(self.settings["altitude"])

    def true_co2(self, vt):
        return _value(self.co2_ppm, vt)

    def _raw_co2(self, vt):
        """What the chip's optics and compensation make of the room's CO2, noise-free."""
        actual = self.pressure_pa if self.pressure_pa is not None else pressure_at(self.altitude_m)
        actual = _value(actual, vt)
        return self.true_co2(vt) * actual / self._assumed_pressure() + self.cal_offset

    def _measure(self, vt, first_shot=False):
        if self.first_measured is None:
            self.first_measured = vt
        raw = self._raw_co2(vt)
        self._asc(vt, raw)
        co2 = raw + self.rng.gauss(0, self.noise_ppm / 2)
        if first_shot:
            co2 += FIRST_SHOT_ERROR_PPM
        ambient = _value(self.temperature_c, vt)
        die = ambient + self.self_heating_c
        reported_t = die - self.settings["offset"] + self.rng.gauss(0, 0.02)
        # The humidity sensor sees the room's water vapour at the die's temperature; the
        # chip re-expresses it at the offset-corrected temperature (what the offset is for).
        vapour = _value(self.humidity_pct, vt) / 100 * saturation_hpa(ambient)
        reported_rh = 100 * vapour / saturation_hpa(reported_t) + self.rng.gauss(0, 0.1)
        words = [min(40000, max(0, int(round(co2)))),
                 min(65535, max(0, int(round((reported_t + 45) * 65535 / 175)))),
                 min(65535, max(0, int(round(reported_rh * 65535 / 100))))]
        if self.fault == "stuck_value":
            if self.frozen is None:
                self.frozen = self.last_words or words
            words = list(self.frozen)
        else:
            self.frozen = None
        self.last_words = words
        if self.fault == "out_of_range":
            words = [0xFFFF] + words[1:]
        self.buffer = words
        self.measurements.append((vt, self.true_co2(vt), words[0]))

    def _asc(self, vt, raw):
        if not self.settings["asc"]:
            self.asc_start = None
            return
        if self.asc_start is None:
            self.asc_start, self.asc_min = vt, raw
            return
        self.asc_min = min(self.asc_min, raw)
        period = ASC_INITIAL_US if self.asc_periods == 0 else ASC_STANDARD_US
        if vt - self.asc_start >= period:
            self.cal_offset += 400 - self.asc_min
            self.asc_periods += 1
            self.asc_start, self.asc_min = vt, raw

    def _advance(self, vt):
        """Complete the measurements that are due by vt ("not_ready": they yield nothing)."""
        produce = self.fault != "not_ready"
        if self.mode in ("periodic", "low_power") and self.next_us is not None:
            step = PERIODIC_US if self.mode == "periodic" else LOW_POWER_US
            if vt >= self.next_us:
                missed = (vt - self.next_us) // step
                self.next_us += missed * step
                if produce:
                    self._measure(self.next_us)  # only the newest survives in the buffer
                self.next_us += step
        if self.shot_until is not None and vt >= self.shot_until:
            self.shots += 1
            if produce:
                self._measure(self.shot_until, first_shot=self.shots == 1)
            self.shot_until = None
            self.mode = "idle"

    # ------------------------------------------------------------ the bus

    def transfer(self, write, read_n, vt):
        if self.fault == "nack":
            raise BusFault(errno.ENODEV)
        self._advance(vt)
        if vt < self.busy_until:
            raise BusFault(errno.ENODEV)  # executing a command: no ACK (table 9 times)
        us = (len(write) + read_n + 1) * 9 * 10  # 100 kHz: 90 µs a byte with its ACK
        if write:
            self._command(write, vt)
        if read_n:
            return self._answer(read_n), us
        return b"", us

    def _command(self, write, vt):
        if len(write) < 2:
            raise BusFault(errno.EIO)
        code = (write[0] << 8) | write[1]
        spec = COMMANDS.get(code)
        if spec is None or (code in SCD41_ONLY and self.variant != "scd41"):
            raise BusFault(errno.ENODEV)  # an unknown command is not acknowledged
        exec_ms, nargs, nanswer, during = spec
        if self.mode in ("periodic", "low_power") and not during:
            raise BusFault(errno.ENODEV)
        if self.mode == "single_shot":
            raise BusFault(errno.ENODEV)
        args = []
        for i in range(nargs):
            chunk = write[2 + 3 * i:5 + 3 * i]
            if len(chunk) != 3 or crc8(chunk[:2]) != chunk[2]:
                raise BusFault(errno.EIO)  # bad CRC: the chip drops the command
            args.append((chunk[0] << 8) | chunk[1])
        self.commands.append((vt, code))
        self.answer = None
        self.busy_until = vt + exec_ms * MS
        answer = self._execute(code, args, vt)
        if nanswer:
            self.answer = answer

    def _answer(self, n):
        words = self.answer
        if words is None:
            raise BusFault(errno.ENODEV)  # nothing to say (3.5.2: no data -> NACK)
        self.answer = None
        out = bytearray()
        for w in words:
            pair = bytes([w >> 8, w & 0xFF])
            crc = crc8(pair)
            if self.fault == "crc":
                crc ^= 0x5A
            out += pair + bytes([crc])
        return bytes(out[:n])

    def _execute(self, code, args, vt):
        s = self.settings
        if code == 0x21B1:
            self.mode, self.next_us = "periodic", vt + PERIODIC_US
        elif code == 0x21AC:
            self.mode, self.next_us = "low_power", vt + LOW_POWER_US
        elif code == 0x3F86:
            self.mode, self.next_us = "idle", None
        elif code == 0xEC05:
            if self.buffer is None:
                return None
            words, self.buffer = self.buffer, None
            return words
        elif code == 0xE4B8:
            return [0x8000 | (0x0006 if self.buffer is not None else 0)]
        elif code == 0x241D:
            s["offset"] = args[0] * 175 / 65535
        elif code == 0x2318:
            return [int(round(s["offset"] * 65535 / 175))]
        elif code == 0x2427:
            s["altitude"] = args[0]
        elif code == 0x2322:
            return [s["altitude"]]
        elif code == 0xE000:
            self.pressure_set = args[0] * 100
        elif code == 0x2416:
            s["asc"] = 1 if args[0] else 0
        elif code == 0x2313:
            return [s["asc"]]
        elif code == 0x3615:
            self.eeprom = dict(s)
            self.eeprom_writes += 1
        elif code == 0x3682:
            return [(self.serial >> 32) & 0xFFFF, (self.serial >> 16) & 0xFFFF,
                    self.serial & 0xFFFF]
        elif code == 0x3639:
            return [0]
        elif code == 0x3632:
            self.eeprom = dict(DEFAULTS)
            self.settings = dict(DEFAULTS)
        elif code == 0x3646:
            self.settings = dict(self.eeprom)
        elif code == 0x219D:
            self.mode, self.shot_until = "single_shot", vt + SINGLE_SHOT_US
        elif code == 0x362F:
            return [self._frc(args[0], vt)]
        return None

    def _frc(self, reference, vt):
        if (self.fault == "frc_fail" or self.first_measured is None
                or vt - self.first_measured < FRC_MIN_US):
            self.frc_log.append((vt, reference, None))
            return 0xFFFF
        correction = int(round(reference - self._raw_co2(vt)))
        self.cal_offset += correction
        self.frc_log.append((vt, reference, correction))
        return (correction + 0x8000) & 0xFFFF
