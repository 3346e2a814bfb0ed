# One realistic reading of each sensor kind. Plain data that MicroPython and CPython both
# import: the demo, the tests and the benches use the same readings.
from protocol import schema

READINGS = (
    (schema.FILL, {"level_pct": 85.5, "distance_mm": 812, "temperature_c": 31.4,
                   "hours_to_full": 40, "fault": 0}),
    (schema.PARKING, {"occupied": True, "minutes": 27, "field_ut": 48.7, "overstay": False,
                      "fault": 0}),
    (schema.CO2, {"co2_ppm": 1234, "temperature_c": 22.7, "humidity_pct": 45.5, "fault": 0}),
    (schema.LUMINAIRE, {"power_w": 78.5, "energy_wh": 152340, "level_pct": 70, "burn_h": 9870,
                        "fault": 0}),
)

DEMO_KEY = bytes(range(16))
DEMO_ADDR = 0x12AB34
