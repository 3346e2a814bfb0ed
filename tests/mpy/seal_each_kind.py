# Runs on MicroPython against protocol/ compiled to .mpy: encode, encrypt and MIC one
# reading of each kind, as a node does once per cycle. Prints one frame per line (hex).
import gc

from protocol import frame, schema

READINGS = (
    (schema.FILL, {"level_pct": 85.5, "distance_mm": 812, "temperature_c": 31.4,
                   "hours_to_full": 40, "fault": 0}),
    (schema.PARKING, {"occupied": True, "minutes": 27, "field_ut": 48.7, "overstay": False,
                      "fault": 0}),
    (schema.CO2, {"co2_ppm": 1234, "temperature_c": 22.7, "humidity_pct": 45.5, "fault": 0}),
    (schema.LUMINAIRE, {"power_w": 78.5, "energy_wh": 152340, "level_pct": 70, "burn_h": 9870,
                        "fault": 0}),
)

keys = frame.Keys(bytes(range(16)))
fcnt = 70000
for kind, reading in READINGS:
    gc.collect()
    sealed = frame.seal(keys, kind, 0x12AB34, fcnt, schema.encode(kind, reading))
    print(schema.kind_name(kind), sealed.hex())
    fcnt += 1
