# The HTTP API, status page and metrics; commands queued through the API reach the node in
# the reply window of its next uplink and are tracked until acknowledged, retried, expired.
import dataclasses
import json
import urllib.error
import urllib.request

from protocol import schema

from gateway import config as config_mod
from tests.gateway.broker import wait_until
from tests.gateway.harness import GatewayThread, make_config
from tests.gateway.node import FILL, WifiNode


def http(g, path, body=None):
    url = "http://127.0.0.1:%d%s" % (g.http_port, path)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if "json" in r.headers["Content-Type"] else text)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_command_queued_by_the_api_reaches_the_node_and_is_acknowledged(tmp_path, fleet):
    inv, devices = fleet
    lum = devices[3]
    with GatewayThread(make_config(tmp_path, inv, http=True)) as g:
        status, cmd = http(g, "/api/devices/%s/commands" % lum.id,
                           {"command": "dim_override", "arg": [30, 120]})
        assert status == 201 and cmd["state"] == "queued"
        node = WifiNode(addr=lum.addr, key=lum.key, gateway=g.udp)
        reading = {"power_w": 35.5, "energy_wh": 1000, "level_pct": 70, "burn_h": 10, "fault": 0}
        got = node.exchange(node.reading(schema.LUMINAIRE, reading))
        assert [d.message for d in got] == [
            {"fcnt": 0, "commands": 1},
            {"command_id": cmd["command_id"], "command": "dim_override", "arg": [30, 120]}]
        assert http(g, "/api/devices/%s/commands" % lum.id)[1][0]["state"] == "sent"
        got = node.exchange(node.ack(cmd["command_id"]))  # the next uplink carries the ack
        assert [d.message for d in got] == [{"fcnt": 1, "commands": 0}]
        listed = http(g, "/api/devices/%s/commands" % lum.id)[1]
        assert listed[0]["state"] == "acked" and listed[0]["result"] == "ok"
        acks = http(g, "/api/devices/%s/readings?kind=ack" % lum.id)[1]
        assert acks[0]["values"] == {"command_id": cmd["command_id"], "result": "ok"}
        assert node.bad_downlinks == []


def test_unacknowledged_command_is_retried_then_fails(tmp_path, fleet):
    inv, devices = fleet
    dev = devices[0]
    cfg = make_config(tmp_path, inv, http=True,
                      commands=config_mod.CommandsConfig(max_attempts=2, ttl_s=3600))
    with GatewayThread(cfg) as g:
        assert http(g, "/api/devices/%s/commands" % dev.id,
                    {"command": "set_interval", "arg": 300})[0] == 201
        node = WifiNode(addr=dev.addr, key=dev.key, gateway=g.udp)
        sent = [len(node.exchange(node.reading(schema.FILL, FILL))) - 1 for _ in range(3)]
        assert sent == [1, 1, 0]  # two attempts, then no more
        listed = http(g, "/api/devices/%s/commands" % dev.id)[1]
        assert listed[0]["state"] == "failed" and listed[0]["attempts"] == 2


def test_expired_command_is_not_sent(tmp_path, fleet):
    inv, devices = fleet
    dev = devices[0]
    cfg = make_config(tmp_path, inv, http=True,
                      commands=config_mod.CommandsConfig(max_attempts=3, ttl_s=0.01))
    with GatewayThread(cfg) as g:
        assert http(g, "/api/devices/%s/commands" % dev.id, {"command": "reboot"})[0] == 201
        import time
        time.sleep(0.05)
        node = WifiNode(addr=dev.addr, key=dev.key, gateway=g.udp)
        assert len(node.exchange(node.reading(schema.FILL, FILL))) == 1
        assert http(g, "/api/devices/%s/commands" % dev.id)[1][0]["state"] == "expired"


def test_bad_commands_are_refused_by_the_api(tmp_path, fleet):
    inv, devices = fleet
    with GatewayThread(make_config(tmp_path, inv, http=True)) as g:
        path = "/api/devices/%s/commands" % devices[0].id
        assert http(g, path, {"command": "self_destruct"})[0] == 400
        assert http(g, path, {"command": "set_interval", "arg": 5})[0] == 400
        assert http(g, "/api/devices/nobody/commands", {"command": "reboot"})[0] == 404


def test_status_page_metrics_and_device_api(tmp_path, fleet):
    inv, devices = fleet
    cfg = make_config(tmp_path, inv, http=True)
    cfg = dataclasses.replace(cfg, alarms=config_mod.AlarmsConfig(silent_factor=0.0001,
                                                                  battery_low_mv=3500))
    with GatewayThread(cfg) as g:
        dev = devices[0]
        node = WifiNode(addr=dev.addr, key=dev.key, gateway=g.udp)
        assert node.exchange(node.reading(schema.FILL, dict(FILL, fault=1)))
        assert node.exchange(node.reading(schema.STATUS, {
            "battery_mv": 3300, "reset_cause": 1, "faults": 0, "fw_version": 10000,
            "uptime_s": 1, "queue_depth": 0, "dropped": 0, "awake_ms": 900, "cycle_uah": 1}))
        node.send(b"\x00" * 20)
        status, health = http(g, "/healthz")
        assert status == 200 and health["status"] == "ok" and health["pipeline"] is True
        status, listed = http(g, "/api/devices")
        assert status == 200 and [d["id"] for d in listed] == [d.id for d in devices]
        first = listed[0]
        assert first["battery_v"] == 3.3 and first["last_reading"]["kind"] == "fill"
        assert "battery_low" in first["alarms"] and "fault:bus" in first["alarms"]
        # The expected interval is scaled to 60 ms here: soon every device is silent.
        wait_until(lambda: all(d["silent"] for d in http(g, "/api/devices")[1]), 5, "silence")
        readings = http(g, "/api/devices/%s/readings?limit=5" % dev.id)[1]
        assert [r["kind"] for r in readings] == ["status", "fill"]
        status, page = http(g, "/")
        assert status == 200 and all(d.id in page for d in devices) and "3.30 V" in page
        wait_until(lambda: "reason=\"bad_frame\"" in http(g, "/metrics")[1], 5, "metrics")
        metrics = http(g, "/metrics")[1]
        for name in ('cityedge_frames_total{ingress="udp"} 3.0',
                     'cityedge_frames_accepted_total{ingress="udp"} 2.0',
                     'cityedge_device_last_seen_timestamp_seconds{device="%s"}' % dev.id,
                     'cityedge_device_silent{device="%s"} 1.0' % devices[1].id,
                     "cityedge_store_bytes"):
            assert name in metrics, name
        assert http(g, "/api/devices/nobody/readings")[0] == 404
