# Winsen MH-Z19B NDIR CO2 module on a UART (MH-Z19B user manual, version 1.0).
#
# 9600 baud, 8 data bits, 1 stop bit, no parity. Every command and answer is a 9-byte frame:
# 0xFF, then (command frames) the sensor number 0x01 and the command, or (answers) the
# command echoed; bytes 3..7 carry the data; byte 8 is the checksum: the two's complement
# of the sum of bytes 1..7. Only "read CO2" (0x86) answers; calibration, ABC and range
# commands have no return value, so the driver cannot confirm them. Detection range 2000,
# 5000 or 10000 ppm (note under 0x99). Span calibration (0x88) is not used: it needs a
# reference gas, which a classroom does not have.
from micropython import const

from sensors.errors import CRCError, RangeError, SensorTimeout

_START = const(0xFF)
_SENSOR = const(0x01)
_READ_CO2 = const(0x86)        # "0x86 - Read CO2 concentration": ppm = HIGH * 256 + LOW
_ZERO = const(0x87)            # "0x87 - Calibrate Zero Point": the air must be at 400 ppm
_ABC = const(0x79)             # "0x79 - ON/OFF Self-calibration": byte 3 0xA0 on, 0x00 off
_RANGE = const(0x99)           # "0x99 - Detection range": 32-bit range in bytes 4..7
_ABC_ON = const(0xA0)
ZERO_PPM = const(400)          # "8. Zero point calibration": all zero points are 400 ppm
ZERO_MAX_PPM = const(450)      # a reference further from 400 ppm is no zero point
FRAME = const(9)


def checksum(frame):
    """Manual, "Checksum calculation": (negated (byte 1 + ... + byte 7)) + 1, one byte."""
    s = 0
    for i in range(1, 8):
        s += frame[i]
    return (0xFF - (s & 0xFF) + 1) & 0xFF


class MHZ19B:
    def __init__(self, uart, detection_range=5000, offset_ppm=0):
        """offset_ppm: added to every reading (the difference between the reference of the
        last zero calibration and the 400 ppm the module takes its zero point to be)."""
        self._uart = uart
        self._tx = bytearray(FRAME)
        self._rx = bytearray(FRAME)
        self.range = detection_range
        self.offset = offset_ppm

    def _send(self, command, b3=0, b6=0, b7=0):
        tx = self._tx
        tx[0], tx[1], tx[2], tx[3], tx[4] = _START, _SENSOR, command, b3, 0
        tx[5], tx[6], tx[7] = 0, b6, b7
        tx[8] = checksum(tx)
        uart = self._uart
        while uart.any():  # a late answer to an earlier command would shift every frame
            uart.read()
        uart.write(tx)

    def co2_ppm(self):
        """The module's CO2 reading; SensorTimeout without an answer, CRCError on a bad or
        misaligned frame, RangeError above the detection range."""
        self._send(_READ_CO2)
        rx = self._rx
        n = self._uart.readinto(rx)
        if not n or n < FRAME:
            raise SensorTimeout("mh-z19b: %d of 9 bytes" % (n or 0))
        if rx[0] != _START or rx[1] != _READ_CO2 or rx[8] != checksum(rx):
            raise CRCError("mh-z19b: bad frame")
        ppm = rx[2] * 256 + rx[3]
        if ppm > self.range:
            raise RangeError("mh-z19b: %d ppm out of range" % ppm)
        return ppm

    def setup(self, offset_c, altitude_m, asc):
        """The detection range and ABC (automatic baseline correction, on by default: the
        lowest level of each 24 h is taken as 400 ppm). The module has no thermometer
        output nor pressure compensation: offset_c and altitude_m do not apply."""
        # The manual's table puts the range in bytes 4..7 (its first revision said bytes
        # 3, 4); its own example FF 01 99 00 00 00 07 D0 8F has it in bytes 6, 7.
        self._send(_RANGE, 0, self.range >> 8, self.range & 0xFF)
        self._send(_ABC, _ABC_ON if asc else 0)

    def measure(self):
        return self.co2_ppm() + self.offset, None, None

    def forced_recalibration(self, reference_ppm):
        """Zero-point calibration (0x87) in air of reference_ppm: the module can only take
        the air to be 400 ppm, so the rest becomes self.offset. ValueError for a reference
        that is no zero point (above ZERO_MAX_PPM)."""
        if reference_ppm > ZERO_MAX_PPM:
            raise ValueError("mh-z19b: calibrates at its 400 ppm zero point only")
        self._send(_ZERO)
        self.offset = reference_ppm - ZERO_PPM
        return self.offset
