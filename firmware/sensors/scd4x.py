# Sensirion SCD4x (SCD40, SCD41) photoacoustic NDIR CO2 sensor with on-chip temperature and
# humidity (SCD4x datasheet, version 1.3, September 2022).
#
# Every command is a 16-bit word sent MSB first (section 3.3). Arguments and answers are
# 16-bit words, each followed by a CRC-8 (polynomial 0x31, init 0xFF; section 3.11, table
# 32). After a command the chip needs its execution time (table 9) before the next
# transfer; while it is busy, and when read_measurement finds no new data, it does not
# acknowledge its address (NACK, section 3.5.2). Settings can only be changed in idle
# mode (not while a periodic measurement runs: table 9, "during meas."); they live in RAM
# until persist_settings.
#
# The code is kept small on purpose: on a 96 KB heap every loaded function costs RAM.
from micropython import const
import time

from sensors.errors import BusError, CRCError, RangeError, SensorTimeout
from sensors.sensirion import crc8

ADDRESS = const(0x62)  # section 3.1

# Commands (section 3.4, table 9) and their execution times in ms.
_START_PERIODIC = const(0x21B1)       # 3.5.1: a measurement every 5 s
_READ_MEASUREMENT = const(0xEC05)     # 3.5.2: 1 ms; CO2 ppm, T, RH words
_STOP_PERIODIC = const(0x3F86)        # 3.5.3: 500 ms before the chip answers again
_SET_TEMPERATURE_OFFSET = const(0x241D)  # 3.6.1: word = offset * 65535 / 175
_GET_TEMPERATURE_OFFSET = const(0x2318)  # 3.6.2
_SET_ALTITUDE = const(0x2427)         # 3.6.3: metres above sea level
_GET_ALTITUDE = const(0x2322)         # 3.6.4
_FORCED_RECALIBRATION = const(0x362F)  # 3.7.1, table 18: 400 ms; answer = correction + 0x8000
_SET_ASC = const(0x2416)              # 3.7.2, table 19: 1 enabled, 0 disabled
_GET_ASC = const(0x2313)              # 3.7.3, table 20
_START_LOW_POWER = const(0x21AC)      # 3.8.1: a measurement about every 30 s
_DATA_READY = const(0xE4B8)           # 3.8.2: ready when the low 11 bits are not 0
_PERSIST = const(0x3615)              # 3.9.1: 800 ms; EEPROM good for >= 2000 writes
_SERIAL = const(0x3682)               # 3.9.2: three words
_SINGLE_SHOT = const(0x219D)          # 3.10.1, table 28: SCD41 only, 5000 ms
_CMD_MS = const(1)                    # table 9: every other command used here
_STOP_MS = const(500)
_FRC_MS = const(400)
_PERSIST_MS = const(800)
SINGLE_SHOT_MS = const(5000)
PERIODIC_MS = const(5000)
LOW_POWER_MS = const(30000)
_FRC_FAILED = const(0xFFFF)           # table 18
_READY_MASK = const(0x07FF)           # 3.8.2
_CO2_MAX = const(40000)               # section 1.1: output range 0..40000 ppm
_POLL_MS = const(1000)


class SCD4x:
    def __init__(self, i2c, mode="single_shot", sleep_ms=time.sleep_ms, address=ADDRESS):
        """mode: "single_shot" (SCD41), "low_power" or "periodic". sleep_ms waits for the
        long conversions (the caller may pass a light sleep)."""
        self._i2c = i2c
        self._addr = address
        self._mode = mode
        self._sleep = sleep_ms
        self._buf = bytearray(9)
        self._w = [0, 0, 0]

    def _cmd(self, command, arg=None, exec_ms=_CMD_MS, nwords=0):
        """Send a command (with one argument word), wait its execution time, read nwords
        answer words into self._w. BusError on a NACK, CRCError on a bad CRC."""
        buf = self._buf
        buf[0], buf[1] = command >> 8, command & 0xFF
        n = 2
        if arg is not None:
            buf[2], buf[3] = (arg >> 8) & 0xFF, arg & 0xFF
            buf[4] = crc8(buf, 2, 4)
            n = 5
        mv = memoryview(buf)
        try:
            self._i2c.writeto(self._addr, mv[:n])
            if exec_ms:
                time.sleep_ms(exec_ms)
            if nwords:
                self._i2c.readfrom_into(self._addr, mv[:nwords * 3])
        except OSError as e:
            raise BusError("scd4x: NACK on 0x%04x (%s)" % (command, e))
        w = self._w
        for i in range(nwords):
            j = i * 3
            if crc8(buf, j, j + 2) != buf[j + 2]:
                raise CRCError("scd4x: bad CRC from 0x%04x" % command)
            w[i] = (buf[j] << 8) | buf[j + 1]
        return w

    def _start(self):
        if self._mode == "single_shot":
            self._cmd(_SINGLE_SHOT, exec_ms=0)
            self._sleep(SINGLE_SHOT_MS)
        else:
            self._cmd(_START_PERIODIC if self._mode == "periodic" else _START_LOW_POWER,
                      exec_ms=0)

    def setup(self, offset_c, altitude_m, asc):
        """Idle the chip, check it answers, write the settings that differ from what it
        holds and persist them (only then: EEPROM wear), start the measuring mode. In
        single-shot mode the first shot after power-up is discarded (3.10)."""
        cmd = self._cmd
        cmd(_STOP_PERIODIC, exec_ms=_STOP_MS)  # harmless when idle already
        cmd(_SERIAL, nwords=3)  # answers with a good CRC: the chip is there
        word = int(offset_c * 65535 / 175 + 0.5)
        changed = False
        for get, put, value in ((_GET_TEMPERATURE_OFFSET, _SET_TEMPERATURE_OFFSET, word),
                                (_GET_ALTITUDE, _SET_ALTITUDE, int(altitude_m)),
                                (_GET_ASC, _SET_ASC, 1 if asc else 0)):
            if cmd(get, nwords=1)[0] != value:
                cmd(put, value)
                changed = True
        if changed:
            cmd(_PERSIST, exec_ms=_PERSIST_MS)
        self._start()
        if self._mode == "single_shot":
            self.read()

    def read(self):
        """(ppm, °C, %RH) of the newest measurement, waiting for it in periodic modes."""
        # A shot is over when read; a periodic mode has one due within 5 s; low-power mode
        # (30 s) is read after the node's sleep, and waiting longer would trip the watchdog.
        limit = PERIODIC_MS if self._mode == "periodic" else 0
        waited = 0
        while not self._cmd(_DATA_READY, nwords=1)[0] & _READY_MASK:
            if waited >= limit:
                raise SensorTimeout("scd4x: no measurement ready")
            self._sleep(_POLL_MS)
            waited += _POLL_MS
        w = self._cmd(_READ_MEASUREMENT, nwords=3)
        if w[0] > _CO2_MAX:
            raise RangeError("scd4x: %d ppm out of range" % w[0])
        # 3.5.2: ppm as is; T = -45 + 175 * word / 65535; RH = 100 * word / 65535
        return w[0], -45 + 175 * w[1] / 65535, 100 * w[2] / 65535

    def measure(self):
        """One reading: a single shot taken now, or the newest periodic measurement."""
        if self._mode == "single_shot":
            self._start()
        return self.read()

    def forced_recalibration(self, reference_ppm):
        """FRC to reference_ppm (3.7.1: after > 3 minutes of measuring in the mode in use).
        The correction in ppm, or None if the chip reports failure (0xFFFF)."""
        periodic = self._mode != "single_shot"
        if periodic:
            self._cmd(_STOP_PERIODIC, exec_ms=_STOP_MS)
        word = self._cmd(_FORCED_RECALIBRATION, int(reference_ppm), _FRC_MS, 1)[0]
        if periodic:
            self._start()
        return None if word == _FRC_FAILED else word - 0x8000
