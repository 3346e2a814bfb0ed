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
from micropython import const
import time

from sensors.errors import BusError, CRCError, RangeError, SensorTimeout

ADDRESS = const(0x62)  # section 3.1: fixed I2C address

# Commands and their execution times in ms (section 3.4, table 9).
_START_PERIODIC = const(0x21B1)       # 3.5.1: first data after 5 s
_READ_MEASUREMENT = const(0xEC05)     # 3.5.2: 1 ms
_STOP_PERIODIC = const(0x3F86)        # 3.5.3: 500 ms before the chip answers again
_SET_TEMPERATURE_OFFSET = const(0x241D)  # 3.6.1: 1 ms
_GET_TEMPERATURE_OFFSET = const(0x2318)  # 3.6.2: 1 ms
_SET_ALTITUDE = const(0x2427)         # 3.6.3: metres above sea level, 1 ms
_GET_ALTITUDE = const(0x2322)         # 3.6.4: 1 ms
_SET_PRESSURE = const(0xE000)         # 3.6.5: Pa / 100, 1 ms; allowed while measuring
_FORCED_RECALIBRATION = const(0x362F)  # 3.7.1: 400 ms; answer = correction + 0x8000
_SET_ASC = const(0x2416)              # 3.7.2: 1 ms
_GET_ASC = const(0x2313)              # 3.7.3: 1 ms
_START_LOW_POWER = const(0x21AC)      # 3.8.1: a measurement about every 30 s
_DATA_READY = const(0xE4B8)           # 3.8.2: 1 ms; ready when the low 11 bits are not 0
_PERSIST = const(0x3615)              # 3.9.1: 800 ms, EEPROM (>= 2000 write cycles)
_SERIAL = const(0x3682)               # 3.9.2: 1 ms, three words
_SELF_TEST = const(0x3639)            # 3.9.3: 10000 ms, word 0 = 0: no malfunction
_REINIT = const(0x3646)               # 3.9.5: 20 ms
_SINGLE_SHOT = const(0x219D)          # 3.10.1: SCD41 only, 5000 ms
_STOP_MS = const(500)
_FRC_MS = const(400)
_PERSIST_MS = const(800)
_SELF_TEST_MS = const(10000)
_REINIT_MS = const(20)
_CMD_MS = const(1)
SINGLE_SHOT_MS = const(5000)          # table 28: max. command duration
PERIODIC_S = const(5)                 # 3.5.1: signal update interval
LOW_POWER_S = const(30)               # 3.8.1
_FRC_FAILED = const(0xFFFF)           # 3.7.1, table 18
_READY_MASK = const(0x07FF)           # 3.8.2
_CO2_MAX = const(40000)               # section 1.1: output range 0..40000 ppm


def crc8(data, start=0, end=None):
    """Sensirion CRC-8 (section 3.11, table 32): polynomial 0x31, init 0xFF, no
    reflection, no final XOR; crc8(b"\\xbe\\xef") == 0x92."""
    if end is None:
        end = len(data)
    crc = 0xFF
    for i in range(start, end):
        crc ^= data[i]
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def temperature_c(raw):
    """Section 3.5.2: T = -45 + 175 * word / (2^16 - 1)."""
    return -45 + 175 * raw / 65535


def humidity_pct(raw):
    """Section 3.5.2: RH = 100 * word / (2^16 - 1)."""
    return 100 * raw / 65535


def offset_word(offset_c):
    """Section 3.6.1: word = T_offset * (2^16 - 1) / 175."""
    return int(offset_c * 65535 / 175 + 0.5)


class SCD4x:
    def __init__(self, i2c, address=ADDRESS):
        self._i2c = i2c
        self._addr = address
        self._cmd = bytearray(5)   # command word + one argument word + CRC
        self._rx = bytearray(9)    # up to three answer words with their CRCs
        self._words = [0, 0, 0]

    # ---------------------------------------------------------------- transfers

    def _write(self, command, arg=None):
        buf = self._cmd
        buf[0] = command >> 8
        buf[1] = command & 0xFF
        n = 2
        if arg is not None:
            buf[2] = (arg >> 8) & 0xFF
            buf[3] = arg & 0xFF
            buf[4] = crc8(buf, 2, 4)
            n = 5
        try:
            self._i2c.writeto(self._addr, memoryview(buf)[:n])
        except OSError as e:
            raise BusError("scd4x at 0x%02x: no ACK for command 0x%04x (%s)"
                           % (self._addr, command, e))

    def _read(self, command, nwords):
        """The answer words of `command` (already sent and executed) into self._words."""
        buf = memoryview(self._rx)[:nwords * 3]
        try:
            self._i2c.readfrom_into(self._addr, buf)
        except OSError as e:
            raise BusError("scd4x at 0x%02x: no answer to 0x%04x (%s)"
                           % (self._addr, command, e))
        words = self._words
        for i in range(nwords):
            j = i * 3
            if crc8(buf, j, j + 2) != buf[j + 2]:
                raise CRCError("scd4x: bad CRC in word %d of the answer to 0x%04x"
                               % (i, command))
            words[i] = (buf[j] << 8) | buf[j + 1]
        return words

    def _query(self, command, nwords, exec_ms=_CMD_MS, arg=None):
        self._write(command, arg)
        time.sleep_ms(exec_ms)
        return self._read(command, nwords)

    def _send(self, command, exec_ms=_CMD_MS, arg=None):
        self._write(command, arg)
        time.sleep_ms(exec_ms)

    # ---------------------------------------------------------------- identity, modes

    def serial_number(self):
        """The 48-bit serial (idle mode only): proves the chip is there and answering."""
        w = self._query(_SERIAL, 3)
        return (w[0] << 32) | (w[1] << 16) | w[2]

    def stop_periodic(self):
        self._send(_STOP_PERIODIC, _STOP_MS)

    def start_periodic(self, low_power=False):
        self._send(_START_LOW_POWER if low_power else _START_PERIODIC, 0)

    def start_single_shot(self):
        """Start one measurement (SCD41); read it after SINGLE_SHOT_MS. The caller waits,
        so that it can sleep the CPU meanwhile."""
        self._send(_SINGLE_SHOT, 0)

    def reinit(self):
        self._send(_REINIT, _REINIT_MS)

    def data_ready(self):
        return bool(self._query(_DATA_READY, 1)[0] & _READY_MASK)

    def read_measurement(self):
        """(co2 ppm, temperature °C, humidity %RH) of the newest measurement. SensorTimeout
        if there is none (the buffer empties on read-out), RangeError outside the chip's
        output range."""
        if not self.data_ready():
            raise SensorTimeout("scd4x: no measurement ready")
        w = self._query(_READ_MEASUREMENT, 3)
        co2, t, rh = w[0], w[1], w[2]
        if co2 > _CO2_MAX:
            raise RangeError("scd4x: %d ppm is outside the output range 0..40000" % co2)
        return co2, temperature_c(t), humidity_pct(rh)

    # ---------------------------------------------------------------- settings (idle only)

    def temperature_offset(self, offset_c=None):
        if offset_c is None:
            return self._query(_GET_TEMPERATURE_OFFSET, 1)[0] * 175 / 65535
        self._send(_SET_TEMPERATURE_OFFSET, arg=offset_word(offset_c))

    def altitude(self, metres=None):
        if metres is None:
            return self._query(_GET_ALTITUDE, 1)[0]
        self._send(_SET_ALTITUDE, arg=int(metres))

    def ambient_pressure(self, pa):
        self._send(_SET_PRESSURE, arg=int(pa) // 100)

    def asc(self, enabled=None):
        if enabled is None:
            return bool(self._query(_GET_ASC, 1)[0])
        self._send(_SET_ASC, arg=1 if enabled else 0)

    def persist_settings(self):
        self._send(_PERSIST, _PERSIST_MS)

    def forced_recalibration(self, reference_ppm):
        """Tell the chip the air now holds reference_ppm (idle, after >= 3 minutes of
        measuring in the mode it is used in). The correction applied in ppm, or None if the
        chip reports that the recalibration failed (0xFFFF)."""
        word = self._query(_FORCED_RECALIBRATION, 1, _FRC_MS, arg=int(reference_ppm))[0]
        if word == _FRC_FAILED:
            return None
        return word - 0x8000

    def self_test(self):
        return self._query(_SELF_TEST, 1, _SELF_TEST_MS)[0] == 0
