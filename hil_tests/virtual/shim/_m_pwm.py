# machine.PWM and Signal on the virtual board (loaded on first use by machine.py).
import _board

_hex = _board.hexs
_unhex = _board.unhex
_check = _board.check


class PWM:
    def __init__(self, pin, freq=5000, duty_u16=0):
        self._pin = pin.id
        self._freq = freq
        self.duty_u16(duty_u16)

    def freq(self, hz=None):
        if hz is None:
            return self._freq
        self._freq = hz
        _board.request("pwm", pin=self._pin, freq=hz)

    def duty_u16(self, duty=None):
        if duty is None:
            return _board.request("pwm", pin=self._pin)["duty_u16"]
        _board.request("pwm", pin=self._pin, freq=self._freq, duty_u16=duty)

    def deinit(self):
        _board.request("pwm", pin=self._pin, freq=self._freq, duty_u16=0)


class Signal:
    def __init__(self, pin, invert=False):
        self._pin, self._invert = pin, invert

    def value(self, v=None):
        if v is None:
            return self._pin.value() ^ self._invert
        self._pin.value(bool(v) ^ self._invert)
