# From a decoded message to output records: SI units (ratios 0..1 instead of percent, metres,
# seconds, joules, volts, tesla; temperatures stay in degrees Celsius as SenML's "Cel"), fault
# bits and codes as names, and a timestamp per reading (batched readings are dated back by
# their offsets). gateway/README.md has the table.
import time

from protocol import names

READING_KINDS = ("fill", "parking", "co2", "luminaire")


def _scale(value, factor, digits=9):
    return None if value is None else round(value * factor, digits)


def fill(r):
    return {"fill_level": _scale(r["level_pct"], 0.01, 4),
            "distance_m": _scale(r["distance_mm"], 0.001, 3),
            "temperature_c": r["temperature_c"],
            "time_to_full_s": _scale(r["hours_to_full"], 3600, 0),
            "faults": names.fault_names(r["fault"] or 0)}


def parking(r):
    return {"occupied": r["occupied"],
            "state_duration_s": _scale(r["minutes"], 60, 0),
            "field_deviation_t": _scale(r["field_ut"], 1e-6, 10),
            "overstay": r["overstay"],
            "faults": names.fault_names(r["fault"] or 0)}


def co2(r):
    return {"co2_ppm": r["co2_ppm"], "temperature_c": r["temperature_c"],
            "relative_humidity": _scale(r["humidity_pct"], 0.01, 4),
            "faults": names.fault_names(r["fault"] or 0)}


def luminaire(r):
    return {"power_w": r["power_w"], "energy_j": _scale(r["energy_wh"], 3600, 0),
            "dimming_level": _scale(r["level_pct"], 0.01, 2),
            "burn_time_s": _scale(r["burn_h"], 3600, 0), "lamp": names.lamp_state(r),
            "faults": names.fault_names(r["fault"] or 0)}


def status(r):
    fw = r["fw_version"]
    return {"battery_v": _scale(r["battery_mv"], 0.001, 3),
            "reset_cause": None if r["reset_cause"] is None else
            names.RESET_CAUSES.get(r["reset_cause"], str(r["reset_cause"])),
            "faults": names.fault_names(r["faults"] or 0),
            "fw_version": None if fw is None else "%d.%d.%d" % (fw // 10000, fw // 100 % 100, fw % 100),
            "uptime_s": r["uptime_s"], "queue_depth": r["queue_depth"], "dropped": r["dropped"],
            "awake_s": _scale(r["awake_ms"], 0.001, 3),
            "cycle_charge_c": _scale(r["cycle_uah"], 0.0036, 6)}


def event(r):
    code = r["event"]
    return {"event": None if code is None else names.EVENTS.get(code, str(code)),
            "value": r["value"]}


def ack(r):
    result = r["result"]
    return {"command_id": r["command_id"],
            "result": None if result is None else names.ACK_RESULTS.get(result, str(result))}


CONVERT = {"fill": fill, "parking": parking, "co2": co2, "luminaire": luminaire,
           "status": status, "event": event, "ack": ack}


def iso(t):
    """RFC 3339 UTC with milliseconds: 2025-01-02T03:04:05.678Z."""
    global _iso_second
    whole = int(t)
    ms = int(round((t - whole) * 1000))
    if ms == 1000:
        whole, ms = whole + 1, 0
    if whole != _iso_second[0]:  # the frames of a second share it: formatting it costs most
        _iso_second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return "%s.%03dZ" % (_iso_second[1], ms)


_iso_second = (None, "")


def readings(kind, message):
    """[(kind, index, age_s, values)] for a decoded message of a frame kind."""
    if kind == "batch":
        inner = message["kind"]
        return [(inner, i, r.pop("age_s"), CONVERT[inner](r))
                for i, r in enumerate(message["readings"])]
    return [(kind, 0, 0, CONVERT[kind](message))]
