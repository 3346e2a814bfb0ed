"""DFRobot A02YYUW ultrasonic rangefinder on a UART, from its wiki page (SEN0311): with RX
floating it sends the processed distance every 100..300 ms as 0xFF, high, low,
SUM = (0xFF + high + low) & 0xFF, in mm, 9600 8N1 (about 1 ms per byte). Range 30..4500 mm;
beyond it the module reports the range limit.

Faults: "dead" (sends nothing), "crc" (every frame's checksum is wrong), "stuck_value"
(repeats the first distance it measured), "noise" (now and then a frame off a wall)."""
import random

from hil_tests.virtual.models import Model

PERIOD_US = 100000   # processed mode sends a frame every 100 ms (faster with a target near)
BYTE_US = 1042       # 10 bits at 9600 baud
MIN_MM, MAX_MM = 30, 4500
RX_BUFFER = 256      # the ESP32 UART's receive buffer; older bytes are lost


def frame(mm):
    high, low = mm >> 8, mm & 0xFF
    return bytes([0xFF, high, low, (0xFF + high + low) & 0xFF])


class A02YYUW(Model):
    def __init__(self, uart="uart2", distance_mm=800.0, jitter_mm=0.0, seed=1):
        self.uart = uart
        self.jitter_mm = jitter_mm  # measurement noise (1 sigma); the module compensates
        self._rng = random.Random(seed)  # temperature itself
        self.distance_mm = distance_mm  # a number or a function of virtual time
        self._buffer = bytearray()
        self._filled_to = None  # virtual time up to which sent frames are in the buffer
        self._stuck = None
        self.frames = 0

    def bus_keys(self):
        return [("uart", self.uart)]

    def _measure(self, vt):
        mm = self.distance_mm(vt) if callable(self.distance_mm) else self.distance_mm
        mm += self._rng.gauss(0, self.jitter_mm) if self.jitter_mm else 0
        mm = int(round(min(max(mm, MIN_MM), MAX_MM)))
        self.frames += 1
        if self.fault == "stuck_value":
            self._stuck = self._stuck or mm
            return self._stuck
        if self.fault == "noise" and self.frames % 5 == 0:
            return int(mm * 0.55)
        return mm

    def _fill(self, vt):
        """Frames the module sent up to vt, into the receive buffer (which keeps the newest)."""
        if self._filled_to is None:
            self._filled_to = vt - PERIOD_US  # it has been sending since power-on
        t = (self._filled_to // PERIOD_US + 1) * PERIOD_US
        while t <= vt and self.fault != "dead":
            data = bytearray(frame(self._measure(t)))
            if self.fault == "crc":
                data[3] ^= 0x5A
            self._buffer += data
            t += PERIOD_US
        self._filled_to = max(self._filled_to, vt)
        del self._buffer[:-RX_BUFFER]

    def write(self, data, vt):
        pass  # the module ignores what is sent on RX in this mode

    def pending(self, vt):
        self._fill(vt)
        return len(self._buffer)

    def read(self, n, timeout_ms, vt):
        """Up to n buffered bytes (n < 0: all); with none buffered, wait for the next frame
        as long as the timeout allows. Returns (bytes, µs waited)."""
        self._fill(vt)
        waited = 0
        if not self._buffer:
            waited = (vt // PERIOD_US + 1) * PERIOD_US - vt + 4 * BYTE_US
            if self.fault == "dead" or waited > timeout_ms * 1000:
                return b"", timeout_ms * 1000
            self._fill(vt + waited)
        count = len(self._buffer) if n is None or n < 0 else min(n, len(self._buffer))
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data, waited
