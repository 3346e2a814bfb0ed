# machine.ADC on the virtual board (loaded on first use by machine.py).
import _board

_hex = _board.hexs
_unhex = _board.unhex
_check = _board.check


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_12BIT = 3

    def __init__(self, pin, *, atten=3):
        self._pin = pin.id if hasattr(pin, "id") else pin
        self._atten = atten

    def atten(self, atten):
        self._atten = atten

    def read_uv(self):
        return _board.request("adc", pin=self._pin, atten=self._atten)["uv"]

    def read_u16(self):
        return _board.request("adc", pin=self._pin, atten=self._atten)["u16"]

    def read(self):
        return self.read_u16() >> 4
