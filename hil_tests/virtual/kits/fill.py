"""A waste-container node: a JSN-SR04T rangefinder above the contents, an SHT4x thermometer
in the container's air (speed of sound, temperature, fire alarm), a battery."""
from hil_tests.virtual.models.battery import BatteryADC
from hil_tests.virtual.models.jsnsr04t import JSNSR04T
from hil_tests.virtual.models.sht4x import SHT4x

POWER = "battery"
INTERVAL = 600
SENSORS = {"trigger": 5, "echo": 18, "thermometer": {"i2c": 0, "scl": 22, "sda": 21}}
SETTINGS = {"depth_mm": 1200, "blind_mm": 250}


def models(distance_mm=700, volts=3.7, temperature_c=20.0, thermometer=True):
    """The kit's chips; thermometer=False leaves the SHT4x off the bus (pair it with a
    config whose sensors have no "thermometer")."""
    chips = [BatteryADC(volts=volts),
             JSNSR04T(trigger=SENSORS["trigger"], echo=SENSORS["echo"], distance_mm=distance_mm,
                      temperature_c=temperature_c)]
    if thermometer:
        chips.append(SHT4x(bus="i2c%d" % SENSORS["thermometer"]["i2c"],
                           temperature_c=temperature_c))
    return chips
