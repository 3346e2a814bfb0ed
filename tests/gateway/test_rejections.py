# Bad frames are rejected, counted by reason and logged with the device id, and the stream
# of good frames around them is not disturbed; random input never stops the pipeline.
import os
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import frame, schema

from gateway import config as config_mod
from gateway.uplink import Uplink
from tests.gateway.broker import Consumer, wait_until
from tests.gateway.harness import GatewayThread, make_config
from tests.gateway.node import FILL, WifiNode

REJECTED = "cityedge_frames_rejected_total"


def test_bad_frames_are_rejected_by_reason_and_the_stream_goes_on(tmp_path, broker, fleet, caplog):
    inv, devices = fleet
    dev = devices[0]
    consumer = Consumer(broker.port)
    with GatewayThread(make_config(tmp_path, inv, broker_port=broker.port)) as g:
        node = WifiNode(addr=dev.addr, key=dev.key, gateway=g.udp)
        stranger = WifiNode(addr=0xABCDEF, key=os.urandom(16), gateway=g.udp)
        forger = WifiNode(addr=dev.addr, key=os.urandom(16), gateway=g.udp)
        expected = []
        bad = {"replay": 0, "bad_mic": 0, "truncated": 0, "oversized": 0, "unknown_device": 0,
               "bad_frame": 0}
        previous = None
        for i in range(30):
            good = node.reading(schema.FILL, dict(FILL, distance_mm=i))
            assert node.exchange(good), "no receipt for good frame %d" % i
            expected.append("%s:%d:0" % (dev.id, i))
            if previous is not None:
                # A replay: an old authentic frame with its counter already used, but not
                # the same bytes as the stored frame (so not a harmless duplicate).
                node.send(node.reading(schema.FILL, dict(FILL, distance_mm=999), fcnt=i - 1))
                bad["replay"] += 1
            forger.fcnt = node.fcnt
            node.send(forger.reading(schema.FILL, FILL))
            bad["bad_mic"] += 1
            tampered = bytearray(good)
            tampered[7] ^= 0x01
            node.send(bytes(tampered))
            bad["bad_mic"] += 1
            node.send(good[:8])
            bad["truncated"] += 1
            node.send(good + bytes(300))
            bad["oversized"] += 1
            node.send(stranger.reading(schema.FILL, FILL))
            bad["unknown_device"] += 1
            node.send(bytes([0x08]) + os.urandom(20))  # version 0: a LoRaWAN-like header
            bad["bad_frame"] += 1
            previous = good
        wait_until(lambda: sum(g.metric(REJECTED, reason=r) for r in bad) == sum(bad.values()),
                   10, "every bad frame counted")
        for reason, n in bad.items():
            assert g.metric(REJECTED, reason=reason) == n, reason
        wait_until(lambda: len(consumer.keys()) >= len(expected), 10, "the good frames")
        assert sorted(consumer.keys()) == sorted(expected)
        assert node.bad_downlinks == []
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("frame_rejected")]
    assert any("device=%s reason=bad_mic" % dev.id in line for line in lines)
    assert any("device=%s reason=replay" % dev.id in line for line in lines)
    assert any("device=addr:abcdef reason=unknown_device" in line for line in lines)
    assert all(" reason=" in line and " device=" in line for line in lines)
    consumer.close()


def test_retransmitted_frame_is_a_duplicate_answered_again_and_stored_once(tmp_path, fleet):
    inv, devices = fleet
    dev = devices[0]
    with GatewayThread(make_config(tmp_path, inv)) as g:
        node = WifiNode(addr=dev.addr, key=dev.key, gateway=g.udp)
        data = node.reading(schema.FILL, FILL)
        for _ in range(3):  # the node lost the receipt twice and sends the same bytes again
            assert node.exchange(data)
        assert node.receipts == [0, 0, 0]
        assert g.metric("cityedge_frames_duplicate_total", ingress="udp") == 2
        assert g.metric(REJECTED, reason="replay") == 0
        records = g.call(g.gw.store.device_records, dev.id)
        assert [r["key"] for r in records] == ["%s:0:0" % dev.id]


def test_disabled_device_and_wrong_kind_are_rejected(tmp_path, fleet):
    from gateway import inventory
    inv, devices = fleet
    inventory.set_enabled(inv, devices[1].id, False)
    with GatewayThread(make_config(tmp_path, inv)) as g:
        parked = WifiNode(addr=devices[1].addr, key=devices[1].key, gateway=g.udp)
        assert parked.exchange(parked.reading(schema.PARKING, {
            "occupied": True, "minutes": 1, "field_ut": 1.0, "overstay": False, "fault": 0}),
            tries=1, timeout=0.3) is None
        filler = WifiNode(addr=devices[0].addr, key=devices[0].key, gateway=g.udp)
        assert filler.exchange(filler.reading(schema.CO2, {
            "co2_ppm": 500, "temperature_c": 20, "humidity_pct": 40, "fault": 0}),
            tries=1, timeout=0.3) is None
        wait_until(lambda: g.metric(REJECTED, reason="kind_mismatch") == 1, 5, "kind_mismatch")
        assert g.metric(REJECTED, reason="disabled") == 1


def test_random_uplinks_never_stop_the_pipeline(tmp_path, fleet):
    """Fuzz the pipeline with random bytes, random headers for known devices, and mutated
    authentic frames; afterwards a good frame is still accepted."""
    import asyncio
    from gateway.app import Gateway
    inv, devices = fleet
    dev = devices[0]
    cfg = make_config(tmp_path, inv)
    cfg = config_mod.replace(cfg, udp=config_mod.UdpIngressConfig(enabled=False))
    keys = frame.Keys(dev.key)
    good = frame.seal(keys, schema.FILL, dev.addr, 5, schema.encode(schema.FILL, FILL))

    async def scenario():
        async with Gateway(cfg, maintenance_s=60) as gw:
            p = gw.pipeline
            addr_bytes = dev.addr.to_bytes(3, "big")

            @settings(max_examples=400, deadline=None,
                      suppress_health_check=list(HealthCheck))
            @given(st.one_of(
                st.binary(max_size=300),
                st.builds(lambda k, fc, rest: bytes([k << 3 | 1]) + addr_bytes + fc + rest,
                          st.integers(0, 31), st.binary(min_size=2, max_size=2),
                          st.binary(max_size=260)),
                st.builds(lambda i, b: good[:i] + bytes([b]) + good[i + 1:],
                          st.integers(0, len(good) - 1), st.integers(0, 255))))
            def fuzz(data):
                p.process([Uplink(raw=data, source="fuzz", received=time.time())])

            fuzz()
            before = p.processed
            p.process([Uplink(raw=good, source="fuzz", received=time.time())])
            assert p.processed == before + 1
            assert gw.metrics.registry.get_sample_value(
                "cityedge_frames_accepted_total", {"ingress": "fuzz"}) >= 1
            assert not gw.metrics.registry.get_sample_value(
                REJECTED, {"reason": "internal_error"})
            # The authentic frame was accepted, or a mutation that happened to be it was.
            assert gw.store.frame(dev.id, 5) is not None
    asyncio.run(scenario())


def test_replay_window_survives_a_restart(tmp_path, fleet):
    """All 64 bits of the window are kept (bit 63 set is a negative SQLite integer)."""
    inv, devices = fleet
    dev = devices[0]
    cfg = make_config(tmp_path, inv)
    frames = {}
    with GatewayThread(cfg) as g:
        node = WifiNode(addr=dev.addr, key=dev.key, gateway=g.udp)
        for i in range(70):
            if i == 20:
                node.fcnt += 1  # counter 20 is never sent
                continue
            frames[node.fcnt] = node.reading(schema.FILL, dict(FILL, distance_mm=i))
            assert node.exchange(frames[node.fcnt])
    with GatewayThread(cfg) as g:
        node.gateway = g.udp
        assert node.exchange(frames[69]) and node.exchange(frames[6 + 1])
        assert g.metric("cityedge_frames_duplicate_total", ingress="udp") == 2
        late = node.reading(schema.FILL, FILL, fcnt=20)  # inside the window, never accepted
        assert node.exchange(late)
        node.send(frames[5])  # older than the window
        wait_until(lambda: g.metric(REJECTED, reason="replay") == 1, 5, "old frame rejected")
        assert g.metric(REJECTED, reason="store_error") == 0
