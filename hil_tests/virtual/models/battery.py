"""A battery behind a resistor divider on an ESP32 ADC pin.

ESP32 ADC with 11 dB attenuation: about 150..2450 mV full scale (Espressif ADC docs);
`read_uv` returns the calibrated voltage at the pin, which a divider of ratio `divider`
scales down from the battery."""
from hil_tests.virtual.models import Model

_FULL_SCALE_UV = 2450000


class BatteryADC(Model):
    def __init__(self, pin=35, divider=2.0, volts=3.7):
        self.pin = pin
        self.divider = divider
        self.volts = volts  # a number, or a function of virtual time (µs)

    def bus_keys(self):
        return [("adc", self.pin)]

    def battery_uv(self, vt):
        volts = self.volts(vt) if callable(self.volts) else self.volts
        return int(volts * 1e6)

    def read_uv(self, vt, atten):
        return min(_FULL_SCALE_UV, int(self.battery_uv(vt) / self.divider))


class GPIOInput(Model):
    """A digital input driven by the scenario (a button, a reed contact, a PIR output)."""

    def __init__(self, pin, level=0):
        self.pin = pin
        self.level = level  # 0/1 or a function of virtual time

    def bus_keys(self):
        return [("pin", self.pin)]

    def read(self, vt):
        return self.level(vt) if callable(self.level) else self.level

    def write(self, value, vt):
        pass  # an input pin ignores writes
