"""What a healthy reading of each kind looks like, and fault bits in words, for the bench's
assertions and messages."""
from protocol import schema

# Ranges a working sensor of each kind reports on a bench or in a city: far wider than the
# datasheets' accuracy, narrow enough that a dead or misread chip falls outside them.
PLAUSIBLE = {
    "fill": {"distance_mm": (20, 7500), "level_pct": (0, 100), "temperature_c": (-30, 70)},
    "parking": {"field_ut": (0, 1000)},
    "co2": {"co2_ppm": (350, 10000), "temperature_c": (-10, 50), "humidity_pct": (1, 99)},
    "luminaire": {"power_w": (0, 400), "level_pct": (0, 100)},
}

# The reading's main value per kind, for the report.
MAIN_VALUE = {"fill": "distance_mm", "parking": "field_ut", "co2": "co2_ppm",
              "luminaire": "power_w"}

_FAULTS = [(schema.FAULT_BUS, "bus: the chip does not answer"),
           (schema.FAULT_CRC, "crc: corrupted answers"),
           (schema.FAULT_TIMEOUT, "timeout: no data in time"),
           (schema.FAULT_RANGE, "range: implausible or stuck value"),
           (schema.FAULT_LAMP, "lamp: commanded on, no power drawn"),
           (schema.FAULT_POWER_BAND, "power band: lamp power outside its band"),
           (schema.FAULT_AUX, "aux: a secondary sensor failed")]

SENSOR_FAULTS = schema.FAULT_BUS | schema.FAULT_CRC | schema.FAULT_TIMEOUT | schema.FAULT_RANGE


def fault_words(bits):
    return "; ".join(text for bit, text in _FAULTS if bits & bit) or "none"


def implausible(kind, reading):
    """The fields of a reading outside PLAUSIBLE, as text; empty if all are plausible."""
    out = []
    for name, (low, high) in PLAUSIBLE[kind].items():
        value = reading.get(name)
        if value is None or not low <= value <= high:
            out.append("%s=%r (expected %s..%s)" % (name, value, low, high))
    return out
