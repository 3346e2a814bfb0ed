# Delivery guarantees towards the broker: a broker outage loses nothing, and several
# gateways hearing the same frames give consumers one reading per idempotency key.
import collections
import dataclasses
import sqlite3
import time

from protocol import batch, schema

from tests.gateway.broker import Consumer, wait_until
from tests.gateway.harness import GatewayThread, make_config
from tests.gateway.node import WifiNode, fill_reading


def dedup(messages):
    """What a consumer keyed on the idempotency key keeps; and the keys seen more than once
    whose payloads differ (which would make deduplication unsafe)."""
    seen, conflicts = {}, []
    for topic, key, body in messages:
        if key in seen and {k: v for k, v in seen[key].items() if k not in ("gateway", "received", "observed", "radio")} != \
                {k: v for k, v in body.items() if k not in ("gateway", "received", "observed", "radio")}:
            conflicts.append(key)
        seen.setdefault(key, body)
    return seen, conflicts


def test_broker_outage_mid_stream_loses_nothing(tmp_path, broker, fleet):
    inv, devices = fleet
    dev = devices[0]
    consumer = Consumer(broker.port)
    with GatewayThread(make_config(tmp_path, inv, broker_port=broker.port)) as g:
        node = WifiNode(addr=dev.addr, key=dev.key, gateway=g.udp)
        expected = []

        def send(n):
            for _ in range(n):
                i = node.fcnt
                assert node.exchange(node.reading(schema.FILL, fill_reading(i)))
                expected.append("%s:%d:0" % (dev.id, i))

        send(100)
        wait_until(lambda: len(set(consumer.keys())) >= 50, 10, "half of the first readings")
        broker.stop()
        send(150)  # receipts keep coming: the outbox holds the readings
        wait_until(lambda: g.metric("cityedge_forward_errors_total", forwarder="mqtt") >= 1,
                   10, "the forwarder to notice the outage")
        time.sleep(0.3)  # a few reconnect attempts against the stopped broker
        broker.start()
        send(50)
        wait_until(lambda: set(consumer.keys()) >= set(expected), 30,
                   "every accepted reading after the restart")
        # the consumer may see the last messages just before their PUBACKs move the cursor
        wait_until(lambda: g.call(
            lambda: g.gw.store.backlog(g.gw.forwarders[0].confirmed_seq)[0]) == 0, 10,
            "the outbox to drain once the broker confirmed everything")
    seen, conflicts = dedup(consumer.messages)
    assert sorted(seen) == sorted(expected)
    assert conflicts == []
    consumer.close()


def test_batches_in_flight_through_a_broker_outage_give_each_key_once(tmp_path, broker, fleet):
    """Batches of 4 records, several published before the first is confirmed: every
    uplink of 6 readings fills two at once. The broker goes away mid-stream and comes back;
    each record reaches the consumer (again, for those whose PUBACK was lost), and the
    cursor ends on the last record only once everything is confirmed."""
    inv, devices = fleet
    dev = devices[0]
    consumer = Consumer(broker.port)
    cfg = make_config(tmp_path, inv, broker_port=broker.port)
    cfg = dataclasses.replace(cfg, mqtt=dataclasses.replace(cfg.mqtt, batch=4))
    with GatewayThread(cfg) as g:
        node = WifiNode(addr=dev.addr, key=dev.key, gateway=g.udp)
        expected = []

        def send(n):
            for _ in range(n):
                fcnt = node.fcnt
                body = batch.encode(schema.FILL, [fill_reading(i) for i in range(6)],
                                    step_s=60, newest_age_s=0)
                assert node.exchange(node.seal(schema.BATCH, body))
                expected.extend("%s:%d:%d" % (dev.id, fcnt, i) for i in range(6))

        send(20)
        wait_until(lambda: len(set(consumer.keys())) >= 30, 10, "the first readings")
        broker.stop()
        send(20)
        wait_until(lambda: g.metric("cityedge_forward_errors_total", forwarder="mqtt") >= 1,
                   10, "the forwarder to notice the outage")
        broker.start()
        send(20)
        wait_until(lambda: set(consumer.keys()) >= set(expected), 30, "every reading")
        wait_until(lambda: g.call(
            lambda: g.gw.store.backlog(g.gw.forwarders[0].confirmed_seq)[0]) == 0, 10,
            "the outbox to drain")
    seen, conflicts = dedup(consumer.messages)
    assert sorted(seen) == sorted(expected) and conflicts == []
    # Each key once from the gateway's point of view: one record per key in the outbox, and
    # the cursor, written on the way out, on the last of them.
    db = sqlite3.connect(cfg.store.path)
    keys = [k for k, in db.execute("SELECT key FROM records ORDER BY seq")]
    assert keys == expected
    assert db.execute("SELECT seq FROM cursors WHERE forwarder='mqtt'").fetchone() == \
        db.execute("SELECT MAX(seq) FROM records").fetchone()
    db.close()
    consumer.close()


def test_two_gateways_hearing_the_same_frames_give_one_reading_per_key(tmp_path, broker, fleet):
    inv, devices = fleet
    consumer = Consumer(broker.port)
    cfg_a = make_config(tmp_path, inv, broker_port=broker.port, gateway_id="gw-a")
    cfg_b = make_config(tmp_path, inv, broker_port=broker.port, gateway_id="gw-b")
    with GatewayThread(cfg_a) as a, GatewayThread(cfg_b) as b:
        # Each gateway keeps its own downlink counters, so each answers a listener of its
        # own; both hear the very same uplink bytes, as two receivers would.
        nodes = [WifiNode(addr=d.addr, key=d.key, gateway=a.udp) for d in devices[:2]]
        echoes = [WifiNode(addr=d.addr, key=d.key, gateway=b.udp) for d in devices[:2]]
        expected = set()
        for i in range(40):
            for node, echo, dev in zip(nodes, echoes, devices):
                values = fill_reading(i) if dev.kind == "fill" else {
                    "occupied": bool(i % 2), "minutes": i, "field_ut": 1.5, "overstay": False,
                    "fault": 0}
                data = node.reading(schema.FILL if dev.kind == "fill" else schema.PARKING, values)
                assert node.exchange(data)
                assert echo.exchange(data)
                expected.add("%s:%d:0" % (dev.id, i))
        wait_until(lambda: len(consumer.messages) >= 2 * len(expected), 20, "both gateways")
    seen, conflicts = dedup(consumer.messages)
    assert set(seen) == expected and conflicts == []
    per_key = collections.Counter(k for _, k, _ in consumer.messages)
    assert set(per_key.values()) == {2}
    gateways = collections.defaultdict(set)
    for _, key, body in consumer.messages:
        gateways[key].add(body["gateway"])
    assert all(v == {"gw-a", "gw-b"} for v in gateways.values())
    consumer.close()


def test_the_forwarder_keeps_within_the_brokers_receive_maximum(tmp_path, fleet, monkeypatch):
    """MQTT 5 (3.3.4): no more QoS 1 PUBLISHes without their PUBACK than the broker's
    CONNACK allows; Mosquitto gives its max_inflight_messages, here 5, against batches of
    100 and 4 batches in flight."""
    from gateway.forwarders import mqtt
    from tests.gateway.broker import Mosquitto
    inv, devices = fleet
    dev = devices[0]
    broker = Mosquitto(tmp_path / "strict", max_inflight=5)
    broker.start()
    consumer = Consumer(broker.port)
    in_flight = []  # PUBLISHes without PUBACK once each batch is published
    publish_all = mqtt._Session.publish_all

    def counted(session, messages):
        acks = publish_all(session, messages)
        in_flight.append(len(session._waiting))
        return acks
    monkeypatch.setattr(mqtt._Session, "publish_all", counted)
    cfg = make_config(tmp_path, inv, broker_port=broker.port)
    cfg = dataclasses.replace(cfg, mqtt=dataclasses.replace(cfg.mqtt, batch=100))
    try:
        with GatewayThread(cfg) as g:
            node = WifiNode(addr=dev.addr, key=dev.key, gateway=g.udp)
            for _ in range(300):
                node.send(node.reading(schema.FILL, fill_reading(node.fcnt)))
            wait_until(lambda: len(set(consumer.keys())) == 300, 30, "every reading")
    finally:
        consumer.close()
        broker.stop()
    assert in_flight and max(in_flight) <= 5
