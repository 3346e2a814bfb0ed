# The disk quota: while the broker is away the outbox grows; above store.alarm_pct the alarm
# is raised (metrics, /healthz, log), at store.max_mb uplinks are refused without a receipt
# (the node keeps them), and once the forwarder has drained the outbox they are accepted
# again. Nothing is lost on the way. A tiny quota makes this quick.
import dataclasses
import logging

from protocol import schema

from tests.gateway.broker import Consumer, wait_until
from tests.gateway.harness import GatewayThread, make_config
from tests.gateway.node import WifiNode, fill_reading
from tests.gateway.test_http_and_commands import http

QUOTA_MB = 0.25
ALARM_PCT = 50


def test_store_quota_alarm_refusal_and_recovery_lose_nothing(tmp_path, broker, fleet, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    inv, devices = fleet
    dev = devices[0]
    consumer = Consumer(broker.port)
    cfg = make_config(tmp_path, inv, broker_port=broker.port, http=True)
    cfg = dataclasses.replace(cfg, store=dataclasses.replace(
        cfg.store, max_mb=QUOTA_MB, alarm_pct=ALARM_PCT))
    with GatewayThread(cfg, maintenance_s=0.1) as g:
        empty = g.call(g.gw.store.used_bytes)
        assert empty < QUOTA_MB * 1e6 * ALARM_PCT / 100, "the empty store is already near the quota"
        node = WifiNode(addr=dev.addr, key=dev.key, gateway=g.udp)
        accepted = []
        assert node.exchange(node.reading(schema.FILL, fill_reading(0)))
        accepted.append("%s:0:0" % dev.id)
        wait_until(lambda: "%s:0:0" % dev.id in consumer.keys(), 10, "the first reading")
        broker.stop()

        alarm_seen_at = None
        refused = None
        for i in range(1, 2000):  # far more than the quota holds
            data = node.reading(schema.FILL, fill_reading(i))
            if node.exchange(data, tries=1, timeout=1.0) is None:
                refused = (i, data)
                break
            accepted.append("%s:%d:0" % (dev.id, i))
            if alarm_seen_at is None and g.metric("cityedge_store_quota_alarm") == 1:
                alarm_seen_at = i
        assert refused is not None, "the store never reached its quota"
        assert alarm_seen_at is not None and alarm_seen_at < refused[0], \
            "the alarm did not come before the refusal"
        assert g.metric("cityedge_frames_rejected_total", reason="store_full") >= 1
        status, health = http(g, "/healthz")
        assert status == 200 and health["store_quota_alarm"] is True and health["store_full"]
        status, text = http(g, "/metrics")
        assert "cityedge_store_quota_alarm 1.0" in text
        used = g.call(g.gw.store.used_bytes)
        assert used >= QUOTA_MB * 1e6 * 0.99  # refused at the quota, not long before
        assert any("store_quota_alarm" in r.getMessage() for r in caplog.records)
        assert any("store_full" in r.getMessage() for r in caplog.records)
        assert any("reason=store_full" in r.getMessage() and "device=%s" % dev.id
                   in r.getMessage() for r in caplog.records)
        # Still refused while the broker is away: the node keeps its frame.
        assert node.exchange(refused[1], tries=1, timeout=0.5) is None

        broker.start()
        wait_until(lambda: set(consumer.keys()) >= set(accepted), 30,
                   "every accepted reading at the broker")
        # The forwarder drained the outbox: room again, the node's frame is taken now.
        assert node.exchange(refused[1], tries=30, timeout=0.5) is not None, \
            "uplinks still refused after the outbox drained"
        accepted.append("%s:%d:0" % (dev.id, refused[0]))
        for i in range(refused[0] + 1, refused[0] + 20):
            assert node.exchange(node.reading(schema.FILL, fill_reading(i)))
            accepted.append("%s:%d:0" % (dev.id, i))
        wait_until(lambda: set(consumer.keys()) >= set(accepted), 20, "the later readings")
        wait_until(lambda: g.metric("cityedge_store_quota_alarm") == 0, 10, "the alarm to clear")
        status, health = http(g, "/healthz")
        assert health["store_quota_alarm"] is False and health["store_full"] is False
    assert sorted(set(consumer.keys())) == sorted(accepted)
    consumer.close()
