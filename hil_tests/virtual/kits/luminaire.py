"""An LED street luminaire: a PZEM-004T meter on the lamp's supply (it also sees the 1-10 V
dimming PWM, to draw the lamp's power), a BH1750 ambient light sensor, an HC-SR501 PIR, and
mains power (the node never deep-sleeps)."""
from hil_tests.virtual.models.bh1750 import BH1750, daylight
from hil_tests.virtual.models.pir import PIR
from hil_tests.virtual.models.pzem004t import PZEM004T

POWER = "mains"
INTERVAL = 900
SENSORS = {"uart": 2, "tx": 17, "rx": 16, "meter_addr": 0xF8, "i2c": 0, "scl": 22, "sda": 21,
           "light_addr": 0x23, "pir": 27, "dim": 25}
SETTINGS = {"nominal_power_w": 60, "tolerance_pct": 20, "on_lux": 20, "off_lux": 50,
            "debounce_s": 120, "motion_hold_s": 60, "tick_ms": 1000}


def models(lux=None, motions=(), full_w=60.0, energy_wh=0.0, fail_at_us=None, pir_hold_s=3.0):
    """lux: a number or a function of virtual time (default: a day with sunrise at 07:00
    and sunset at 19:00, virtual time 0 being midnight)."""
    return [PZEM004T(uart="uart%d" % SENSORS["uart"], pwm_pin=SENSORS["dim"], full_w=full_w,
                     energy_wh=energy_wh, fail_at_us=fail_at_us),
            BH1750(bus="i2c%d" % SENSORS["i2c"], addr=SENSORS["light_addr"],
                   lux=daylight() if lux is None else lux),
            PIR(pin=SENSORS["pir"], motions=motions, hold_s=pir_hold_s)]
