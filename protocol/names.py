# Display names for the numbers on air: events, reset causes, fault bits. Used where frames
# are shown to people (gateway, tools); a node does not need them.
from protocol import schema

EVENTS = {1: "emptied", 2: "fire", 3: "full", 4: "occupied", 5: "free", 6: "overstay",
          7: "co2_high", 8: "co2_normal", 9: "lamp_failed", 10: "lamp_ok", 11: "power_band",
          12: "motion", 13: "recalibrated", 14: "battery_low", 15: "fire_clear"}

# Numbered as machine.reset_cause() does on an ESP32.
RESET_CAUSES = {1: "power_on", 2: "hard_reset", 3: "watchdog", 4: "deep_sleep",
                5: "soft_reset", 6: "brown_out"}

FAULTS = ((schema.FAULT_BUS, "bus"), (schema.FAULT_CRC, "crc"),
          (schema.FAULT_TIMEOUT, "timeout"), (schema.FAULT_RANGE, "range"),
          (schema.FAULT_LAMP, "lamp"), (schema.FAULT_POWER_BAND, "power_band"),
          (schema.FAULT_AUX, "aux"), (schema.FAULT_CONFIG, "config"),
          (schema.FAULT_LINK, "link"), (schema.FAULT_QUEUE, "queue_full"),
          (schema.FAULT_APP, "app"))

ACK_RESULTS = {0: "ok", 1: "unknown_command", 2: "bad_argument", 3: "failed"}


def fault_names(bits):
    """["bus", "crc", ...] for a fault bit set; unknown bits as "bit7"."""
    if not bits:
        return []
    names = [name for bit, name in FAULTS if bits & bit]
    known = 0
    for bit, _ in FAULTS:
        known |= bit
    for i in range(16):
        if bits & ~known & (1 << i):
            names.append("bit%d" % i)
    return names


def lamp_state(reading):
    """A luminaire's lamp state from its reading: "failed", "off" or "on" (None if unknown)."""
    fault = reading.get("fault") or 0
    if fault & schema.FAULT_LAMP:
        return "failed"
    level = reading.get("level_pct")
    if level is None:
        return None
    return "off" if level == 0 else "on"
