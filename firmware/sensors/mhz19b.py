# Winsen MH-Z19B NDIR CO2 module on a UART (MH-Z19B user manual, version 1.0).
#
# 9600 baud, 8 data bits, 1 stop bit, no parity. Every command and answer is a 9-byte frame:
# 0xFF, then (command frames) the sensor number 0x01 and the command, or (answers) the
# command echoed; bytes 3..7 carry the data; byte 8 is the checksum: the two's complement
# of the sum of bytes 1..7. Only "read CO2" (0x86) answers; calibration, ABC and range
# commands have no return value, so the driver cannot confirm them.
from micropython import const

from sensors.errors import CRCError, RangeError, SensorTimeout

_START = const(0xFF)
_SENSOR = const(0x01)
_READ_CO2 = const(0x86)        # "0x86 - Read CO2 concentration": ppm = HIGH * 256 + LOW
_ZERO = const(0x87)            # "0x87 - Calibrate Zero Point": the air must be at 400 ppm
_SPAN = const(0x88)            # "0x88 - Calibrate Span Point": span ppm in bytes 3, 4
_ABC = const(0x79)             # "0x79 - ON/OFF Self-calibration": byte 3 0xA0 on, 0x00 off
_RANGE = const(0x99)           # "0x99 - Detection range": 32-bit range in bytes 4..7
_ABC_ON = const(0xA0)
ZERO_PPM = const(400)          # "8. Zero point calibration": all zero points are 400 ppm
RANGES = (2000, 5000, 10000)   # the manual's note under 0x99
FRAME = const(9)


def checksum(frame):
    """Manual, "Checksum calculation": (negated (byte 1 + ... + byte 7)) + 1, one byte."""
    s = 0
    for i in range(1, 8):
        s += frame[i]
    return (0xFF - (s & 0xFF) + 1) & 0xFF


class MHZ19B:
    def __init__(self, uart, detection_range=5000):
        self._uart = uart
        self._tx = bytearray(FRAME)
        self._rx = bytearray(FRAME)
        self.range = detection_range

    def _send(self, command, b3=0, b4=0, b5=0, b6=0, b7=0):
        tx = self._tx
        tx[0], tx[1], tx[2], tx[3], tx[4] = _START, _SENSOR, command, b3, b4
        tx[5], tx[6], tx[7] = b5, b6, b7
        tx[8] = checksum(tx)
        uart = self._uart
        while uart.any():  # a late answer to an earlier command would shift every frame
            uart.read()
        uart.write(tx)

    def co2_ppm(self):
        """The CO2 concentration; SensorTimeout without an answer, CRCError on a bad or
        misaligned frame, RangeError above the detection range."""
        self._send(_READ_CO2)
        rx = self._rx
        n = self._uart.readinto(rx)
        if not n:
            raise SensorTimeout("mh-z19b: no answer to read CO2")
        if n < FRAME:
            raise SensorTimeout("mh-z19b: %d of 9 bytes of the answer" % n)
        if rx[0] != _START or rx[1] != _READ_CO2 or rx[8] != checksum(rx):
            raise CRCError("mh-z19b: bad frame %s" % bytes(rx).hex())
        ppm = rx[2] * 256 + rx[3]
        if ppm > self.range:
            raise RangeError("mh-z19b: %d ppm is above the %d ppm range" % (ppm, self.range))
        return ppm

    def zero_calibration(self):
        """Declare the air around the sensor to be at 400 ppm (after >= 20 minutes in it)."""
        self._send(_ZERO)

    def span_calibration(self, ppm):
        self._send(_SPAN, ppm >> 8, ppm & 0xFF)

    def abc(self, enabled):
        """Automatic baseline correction (on by default): the lowest level of each 24 h is
        taken as 400 ppm. Wrong in a room that never airs out to outdoor levels."""
        self._send(_ABC, _ABC_ON if enabled else 0)

    def set_range(self, ppm):
        if ppm not in RANGES:
            raise ValueError("mh-z19b: range must be one of 2000, 5000, 10000")
        # The manual's table puts the range in bytes 4..7 (its first revision said bytes
        # 3, 4); its own example FF 01 99 00 00 00 07 D0 8F has it in bytes 6, 7.
        self._send(_RANGE, 0, 0, 0, ppm >> 8, ppm & 0xFF)
        self.range = ppm
