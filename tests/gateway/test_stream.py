# Uplinks over UDP are verified, stored, answered with a receipt and published to MQTT.
from protocol import batch, schema

from tests.gateway.broker import Consumer, wait_until
from tests.gateway.harness import GatewayThread, make_config
from tests.gateway.node import FILL, WifiNode, fill_reading


def test_accepted_uplink_gets_a_receipt_and_reaches_the_broker(tmp_path, broker, fleet):
    inv, devices = fleet
    consumer = Consumer(broker.port)
    with GatewayThread(make_config(tmp_path, inv, broker_port=broker.port)) as g:
        node = WifiNode(addr=devices[0].addr, key=devices[0].key, gateway=g.udp, fcnt=42)
        got = node.exchange(node.reading(schema.FILL, FILL))
        assert got and got[0].message == {"fcnt": 42, "commands": 0}
        wait_until(lambda: consumer.keys(), 10, "the reading at the broker")
    topic, key, body = consumer.messages[0]
    assert topic == "cityedge/v1/fill/%s" % devices[0].id
    assert key == body["key"] == "%s:42:0" % devices[0].id
    assert body["values"] == {"fill_level": 0.425, "distance_m": 0.812, "temperature_c": 21.4,
                              "time_to_full_s": 144000, "faults": []}
    assert body["device"] == devices[0].id and body["gateway"] == "gw-test"
    consumer.close()


def test_batch_uplink_becomes_one_record_per_reading_dated_by_its_offset(tmp_path, broker, fleet):
    inv, devices = fleet
    consumer = Consumer(broker.port)
    with GatewayThread(make_config(tmp_path, inv, broker_port=broker.port)) as g:
        node = WifiNode(addr=devices[0].addr, key=devices[0].key, gateway=g.udp)
        body = batch.encode(schema.FILL, [fill_reading(i) for i in range(6)], step_s=600,
                            newest_age_s=30)
        assert node.exchange(node.seal(schema.BATCH, body))
        wait_until(lambda: len(consumer.keys()) == 6, 10, "six readings")
    bodies = sorted((m[2] for m in consumer.messages), key=lambda b: b["index"])
    assert [b["key"] for b in bodies] == ["%s:0:%d" % (devices[0].id, i) for i in range(6)]
    from datetime import datetime
    t = [datetime.fromisoformat(b["observed"].replace("Z", "+00:00")).timestamp() for b in bodies]
    r = datetime.fromisoformat(bodies[0]["received"].replace("Z", "+00:00")).timestamp()
    assert [round(r - x) for x in t] == [30 + 600 * (5 - i) for i in range(6)]
    consumer.close()


def test_stream_from_every_kind_arrives_once_per_key(tmp_path, broker, fleet):
    inv, devices = fleet
    readings = {
        "fill": (schema.FILL, FILL),
        "parking": (schema.PARKING, {"occupied": True, "minutes": 12, "field_ut": 35.2,
                                     "overstay": False, "fault": 0}),
        "co2": (schema.CO2, {"co2_ppm": 812, "temperature_c": 21.5, "humidity_pct": 40.5,
                             "fault": 0}),
        "luminaire": (schema.LUMINAIRE, {"power_w": 35.5, "energy_wh": 123456,
                                         "level_pct": 70, "burn_h": 4000, "fault": 0}),
    }
    consumer = Consumer(broker.port)
    with GatewayThread(make_config(tmp_path, inv, broker_port=broker.port)) as g:
        nodes = [WifiNode(addr=d.addr, key=d.key, gateway=g.udp) for d in devices]
        expected = set()
        for i in range(20):
            for node, dev in zip(nodes, devices):
                kind, values = readings[dev.kind]
                assert node.exchange(node.reading(kind, values))
                expected.add("%s:%d:0" % (dev.id, i))
        status = nodes[0].reading(schema.STATUS, {
            "battery_mv": 3610, "reset_cause": 4, "faults": 0, "fw_version": 10203,
            "uptime_s": 3600, "queue_depth": 0, "dropped": 0, "awake_ms": 850,
            "cycle_uah": 12.5})
        assert nodes[0].exchange(status)
        expected.add("%s:20:0" % devices[0].id)
        wait_until(lambda: set(consumer.keys()) >= expected, 20, "all readings")
    assert sorted(consumer.keys()) == sorted(expected)
    by_key = {m[1]: m for m in consumer.messages}
    st = by_key["%s:20:0" % devices[0].id]
    assert st[0] == "cityedge/v1/status/%s" % devices[0].id
    assert st[2]["values"]["battery_v"] == 3.61 and st[2]["values"]["fw_version"] == "1.2.3"
    lum = [m for m in consumer.messages if m[2]["kind"] == "luminaire"][0][2]["values"]
    assert lum["lamp"] == "on" and lum["dimming_level"] == 0.7 and lum["energy_j"] == 123456 * 3600
    consumer.close()
