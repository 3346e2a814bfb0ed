# mqtt.format = "senml": every record reaches a real subscriber as SenML JSON (RFC 8428):
# base name and base time in the first record, one record per value with "n" and a unit
# from the SenML units registry, numbers as "v", booleans as "vb", names as "vs"; the
# idempotency key as the string record "key" and the content type application/senml+json.
import dataclasses
import re
import time

from protocol import schema

from tests.gateway.broker import Consumer, wait_until
from tests.gateway.harness import GatewayThread, make_config
from tests.gateway.node import WifiNode

# RFC 8428 section 4.2 (SenML labels) and section 4.5.1 (name syntax after resolution).
LABELS = {"bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"}
VALUE_LABELS = ("v", "vs", "vb", "vd", "s")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-:./_]*$")
# Units of the SenML units registry (RFC 8428 section 12.1; "ppm" from RFC 8798) that the
# gateway may produce.
REGISTRY = {"/", "m", "Cel", "s", "T", "ppm", "W", "J", "V", "C", "%RH", "lx"}

READINGS = {
    "fill": (schema.FILL, {"level_pct": 42.5, "distance_mm": 812, "temperature_c": 21.4,
                           "hours_to_full": 40, "fault": 0}),
    "parking": (schema.PARKING, {"occupied": True, "minutes": 17, "field_ut": 12.5,
                                 "overstay": False, "fault": 0}),
    "co2": (schema.CO2, {"co2_ppm": 1234, "temperature_c": 21.5, "humidity_pct": 45.5,
                         "fault": 0}),
    "luminaire": (schema.LUMINAIRE, {"power_w": 35.5, "energy_wh": 10, "level_pct": 70,
                                     "burn_h": 2, "fault": 0}),
}
STATUS = {"battery_mv": 3600, "reset_cause": 1, "faults": 0, "fw_version": 10203,
          "uptime_s": 86400, "queue_depth": 0, "dropped": 0, "awake_ms": 1250, "cycle_uah": 25}

# (kind, name) -> (label, value, unit) the gateway must write, from the README's table.
EXPECTED = {
    ("fill", "fill_level"): ("v", 0.425, "/"), ("fill", "distance_m"): ("v", 0.812, "m"),
    ("fill", "temperature_c"): ("v", 21.4, "Cel"), ("fill", "time_to_full_s"): ("v", 144000, "s"),
    ("fill", "faults"): ("vs", "", None),
    ("parking", "occupied"): ("vb", True, None), ("parking", "overstay"): ("vb", False, None),
    ("parking", "state_duration_s"): ("v", 1020, "s"),
    ("parking", "field_deviation_t"): ("v", 12.5e-6, "T"),
    ("co2", "co2_ppm"): ("v", 1234, "ppm"), ("co2", "relative_humidity"): ("v", 0.455, "/"),
    ("luminaire", "power_w"): ("v", 35.5, "W"), ("luminaire", "energy_j"): ("v", 36000, "J"),
    ("luminaire", "dimming_level"): ("v", 0.7, "/"), ("luminaire", "burn_time_s"): ("v", 7200, "s"),
    ("luminaire", "lamp"): ("vs", "on", None),
    ("status", "battery_v"): ("v", 3.6, "V"), ("status", "cycle_charge_c"): ("v", 0.09, "C"),
    ("status", "fw_version"): ("vs", "1.2.3", None), ("status", "awake_s"): ("v", 1.25, "s"),
}


def check_senml(pack):
    """The RFC 8428 rules a SenML JSON pack must follow; returns {name: record} by resolved
    name, and the base time."""
    assert isinstance(pack, list) and pack, pack
    base_name, base_time = pack[0].get("bn"), pack[0].get("bt")
    assert isinstance(base_name, str) and isinstance(base_time, (int, float))
    out = {}
    for rec in pack:
        assert set(rec) <= LABELS, rec
        assert sum(label in rec for label in VALUE_LABELS) == 1, rec  # exactly one value
        if "v" in rec:
            assert isinstance(rec["v"], (int, float)) and not isinstance(rec["v"], bool)
        if "vb" in rec:
            assert isinstance(rec["vb"], bool)
        if "vs" in rec:
            assert isinstance(rec["vs"], str)
        if "u" in rec:
            assert rec["u"] in REGISTRY, rec
        name = base_name + rec.get("n", "")
        assert NAME.match(name), name
        assert name not in out, "name %s twice" % name
        out[name] = rec
    return out, base_time


def test_senml_records_follow_rfc_8428_with_registered_units(tmp_path, broker, fleet):
    inv, devices = fleet
    consumer = Consumer(broker.port)
    cfg = make_config(tmp_path, inv, broker_port=broker.port)
    cfg = dataclasses.replace(cfg, mqtt=dataclasses.replace(cfg.mqtt, format="senml"))
    sent = {}
    with GatewayThread(cfg) as g:
        for dev in devices:
            node = WifiNode(addr=dev.addr, key=dev.key, gateway=g.udp)
            kind, values = READINGS[dev.kind]
            before = time.time()
            assert node.exchange(node.reading(kind, values))
            assert node.exchange(node.reading(schema.STATUS, STATUS))
            sent[dev.id] = before
            node.close()
        wait_until(lambda: len(consumer.messages) >= 2 * len(devices), 10, "every record")
    assert set(consumer.content_types) == {"application/senml+json"}
    seen = set()
    for topic, key, pack in consumer.messages:
        _, kind, device_id = topic.rsplit("/", 2)
        by_name, base_time = check_senml(pack)
        prefix = "urn:dev:cityedge:%s:" % device_id
        assert pack[0]["bn"] == prefix
        assert by_name[prefix + "key"] == {"bn": prefix, "bt": base_time, "n": "key", "vs": key}
        assert key.startswith(device_id + ":")
        # base time: the observation, in seconds since 1970 (RFC 8428 section 4.5.3)
        assert sent[device_id] - 0.01 <= base_time <= sent[device_id] + 10
        for (k, name), (label, value, unit) in EXPECTED.items():
            if k != kind:
                continue
            rec = by_name[prefix + name]
            assert rec.get(label) == value if label != "v" else abs(rec["v"] - value) < 1e-9, rec
            assert rec.get("u") == unit, rec
            seen.add((k, name))
    assert seen == set(EXPECTED)
    consumer.close()
