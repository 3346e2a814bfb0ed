"""A waste-container node: a JSN-SR04T rangefinder above the contents, a battery."""
from hil_tests.virtual.models.battery import BatteryADC
from hil_tests.virtual.models.jsnsr04t import JSNSR04T

POWER = "battery"
INTERVAL = 600
SENSORS = {"trigger": 5, "echo": 18}
SETTINGS = {"depth_mm": 1200, "blind_mm": 250}


def models(distance_mm=700, volts=3.7, temperature_c=20.0):
    return [BatteryADC(volts=volts),
            JSNSR04T(trigger=SENSORS["trigger"], echo=SENSORS["echo"], distance_mm=distance_mm,
                     temperature_c=temperature_c)]
