# DFRobot A02YYUW waterproof ultrasonic rangefinder, UART output (SEN0311 wiki, "UART
# Output Form"): 9600 8N1, a 4-byte frame every 100..300 ms while RX floats (processed
# value): 0xFF, distance high byte, low byte, SUM = (0xFF + high + low) & 0xFF, in mm.
# Range 30..4500 mm.
from micropython import const

from sensors.errors import CRCError, RangeError, SensorTimeout

_HEADER = const(0xFF)
_FRAME = const(4)
_MIN_MM = const(30)
_MAX_MM = const(4500)
_WAIT_MS = const(500)   # the module sends at least every 300 ms
_TRIES = const(3)       # frames to look at before calling the checksum bad for good


class A02YYUW:
    def __init__(self, uart):
        self._uart = uart
        self._buf = bytearray(_FRAME)
        uart.init(9600, timeout=_WAIT_MS)

    def _drain(self):
        # Frames queued while we slept are stale: start from the next one.
        while self._uart.any():
            self._uart.read()

    def distance_mm(self):
        """The next frame's distance; CRCError, SensorTimeout or RangeError, never a guess."""
        self._drain()
        bad = 0
        while bad < _TRIES:
            head = self._uart.read(1)
            if not head:
                raise SensorTimeout("a02yyuw: no frame within %d ms" % _WAIT_MS)
            if head[0] != _HEADER:
                continue  # resynchronise on the header byte
            if self._uart.readinto(self._buf, _FRAME - 1) != _FRAME - 1:
                raise SensorTimeout("a02yyuw: frame cut short")
            high, low, total = self._buf[0], self._buf[1], self._buf[2]
            if (_HEADER + high + low) & 0xFF != total:
                bad += 1
                continue
            mm = high << 8 | low
            if not _MIN_MM <= mm <= _MAX_MM:
                raise RangeError("a02yyuw: %d mm is outside the sensor's range" % mm)
            return mm
        raise CRCError("a02yyuw: %d frames in a row with a bad checksum" % _TRIES)
