# The NGSI-LD forwarder: Smart Data Models entities, valid against the official schemas,
# upserted in chunks; 207 partial errors, 413 and 5xx handled as the API specifies.
import dataclasses

import pytest

from protocol import batch, schema

from gateway import config as config_mod
from gateway.forwarders.ngsi_ld_mapping import to_entity
from gateway.inventory import Device, Location
from tests.gateway.broker import wait_until
from tests.gateway.harness import GatewayThread, make_config
from tests.gateway.ngsi_fake import FakeContextBroker, validate
from tests.gateway.node import FILL, WifiNode, fill_reading

READINGS = {
    "fill": (schema.FILL, FILL),
    "parking": (schema.PARKING, {"occupied": True, "minutes": 12, "field_ut": 35.2,
                                 "overstay": False, "fault": 0}),
    "co2": (schema.CO2, {"co2_ppm": 812, "temperature_c": 21.5, "humidity_pct": 40.5, "fault": 0}),
    "luminaire": (schema.LUMINAIRE, {"power_w": 35.5, "energy_wh": 123456, "level_pct": 70,
                                     "burn_h": 4000, "fault": 0}),
}


def ngsi_config(tmp_path, inv, url, **kw):
    cfg = make_config(tmp_path, inv)
    return dataclasses.replace(cfg, ngsi_ld=config_mod.NgsiLdConfig(
        enabled=True, url=url, backoff_min_s=0.05, backoff_max_s=0.2, **kw))


@pytest.mark.parametrize("co2_entity", ["IndoorEnvironmentObserved", "AirQualityObserved"])
@pytest.mark.parametrize("kind", sorted(READINGS))
def test_every_kind_maps_to_a_valid_smart_data_model(kind, co2_entity):
    from gateway import normalise
    device = Device(id="dev-1", kind=kind, addr=1, key_file="", address="Damrak 1",
                    location=Location(52.37, 4.89), settings={"parking_site": "centrum"})
    number, values = READINGS[kind]
    decoded = schema.decode(number, schema.encode(number, values))
    (rkind, _, _, normal), = normalise.readings(kind, decoded)
    body = {"kind": rkind, "values": normal, "observed": "2026-01-02T03:04:05.678Z"}
    entity = to_entity(body, device, co2_entity=co2_entity)
    assert validate(entity) == []
    static = ("address", "category", "dateObserved")
    measured = [a for n, a in entity.items() if isinstance(a, dict)
                and a.get("type") == "Property" and n not in static]
    assert measured and all(a["observedAt"] == body["observed"] for a in measured)
    if kind == "fill":
        assert entity["fillingLevel"]["value"] == 0.425  # a fraction, not 42.5 %


@pytest.mark.parametrize("event, status", [("fire", "burning"), ("fire_clear", "ok"),
                                           ("emptied", None)])
def test_a_fire_alarm_sets_the_containers_safety_status(event, status):
    from gateway import normalise
    from protocol import names
    device = Device(id="glass-1", kind="fill", addr=1, key_file="",
                    location=Location(52.37, 4.89))
    code = next(c for c, name in names.EVENTS.items() if name == event)
    decoded = schema.decode(schema.EVENT, schema.encode(schema.EVENT, {"event": code,
                                                                       "value": 74}))
    (rkind, _, _, normal), = normalise.readings("event", decoded)
    body = {"kind": rkind, "values": normal, "observed": "2026-01-02T03:04:05.678Z"}
    entity = to_entity(body, device)
    if status is None:
        assert entity is None
        return
    assert entity["type"] == "WasteContainer" and validate(entity) == []
    assert entity["status"] == {"type": "Property", "value": status,
                                "observedAt": body["observed"]}
    assert "fillingLevel" not in entity  # the alarm does not touch the level


def test_readings_reach_the_context_broker_as_valid_entities(tmp_path, fleet):
    inv, devices = fleet
    with FakeContextBroker(max_entities=2) as cb:
        cb.script = [503, 500]  # the broker is failing at first: retried later
        cfg = ngsi_config(tmp_path, inv, cb.url, batch_max_entities=4)
        with GatewayThread(cfg) as g:
            for dev in devices:
                node = WifiNode(addr=dev.addr, key=dev.key, gateway=g.udp)
                number, values = READINGS[dev.kind]
                assert node.exchange(node.reading(number, values))
            wait_until(lambda: len(cb.entities) == 4, 20, "four entities")
            wait_until(lambda: g.call(lambda: g.gw.store.backlog(
                g.gw.forwarders[0].confirmed_seq)[0]) == 0, 10, "an empty outbox")
        assert cb.invalid == []
        assert any(len(r) > 2 for r in cb.requests)  # answered 413, then split
        assert max(len(r) for r in cb.requests if r) <= 4
        types = sorted(e["type"] for e in cb.entities.values())
        assert types == ["IndoorEnvironmentObserved", "ParkingSpot", "Streetlight", "WasteContainer"]
        bin_ = cb.entities["urn:ngsi-ld:WasteContainer:%s" % devices[0].id]
        assert bin_["fillingLevel"]["value"] == 0.425 and "observedAt" in bin_["fillingLevel"]
        assert bin_["location"]["value"]["type"] == "Point"


def test_partial_errors_are_logged_and_the_rest_goes_on(tmp_path, fleet, caplog):
    inv, devices = fleet
    with FakeContextBroker() as cb:
        bad = "urn:ngsi-ld:ParkingSpot:%s" % devices[1].id
        cb.reject_ids.add(bad)
        with GatewayThread(ngsi_config(tmp_path, inv, cb.url)) as g:
            for dev in devices[:2]:
                node = WifiNode(addr=dev.addr, key=dev.key, gateway=g.udp)
                number, values = READINGS[dev.kind]
                assert node.exchange(node.reading(number, values))
            wait_until(lambda: "urn:ngsi-ld:WasteContainer:%s" % devices[0].id in cb.entities,
                       10, "the good entity")
            wait_until(lambda: g.call(lambda: g.gw.forwarders[0].rejected_entities) == 1, 10,
                       "the rejection counted")
            # The next reading of the good device still goes through.
            node = WifiNode(addr=devices[0].addr, key=devices[0].key, gateway=g.udp, fcnt=1)
            assert node.exchange(node.reading(schema.FILL, dict(FILL, level_pct=90)))
            wait_until(lambda: cb.entities["urn:ngsi-ld:WasteContainer:%s" % devices[0].id]
                       ["fillingLevel"]["value"] == 0.9, 10, "the update")
    assert any("ngsi_ld_entity_rejected device=%s" % devices[1].id in r.getMessage()
               for r in caplog.records)


def test_batched_readings_upsert_the_newest_state(tmp_path, fleet):
    inv, devices = fleet
    with FakeContextBroker() as cb:
        with GatewayThread(ngsi_config(tmp_path, inv, cb.url)) as g:
            node = WifiNode(addr=devices[0].addr, key=devices[0].key, gateway=g.udp)
            body = batch.encode(schema.FILL, [fill_reading(i) for i in range(5)], step_s=60)
            assert node.exchange(node.seal(schema.BATCH, body))
            wait_until(lambda: cb.entities, 10, "the entity")
        e = cb.entities["urn:ngsi-ld:WasteContainer:%s" % devices[0].id]
        assert e["fillingLevel"]["value"] == 0.02  # the newest of the batch: 4 / 2 %
        assert cb.invalid == []


def test_a_fire_alarm_and_a_reading_in_one_batch_both_reach_the_container():
    import json
    from types import SimpleNamespace

    from gateway.forwarders.ngsi_ld import NgsiLdForwarder
    device = Device(id="glass-1", kind="fill", addr=1, key_file="",
                    location=Location(52.37, 4.89))
    forwarder = SimpleNamespace(
        registry=SimpleNamespace(by_id={"glass-1": SimpleNamespace(device=device)}),
        config=SimpleNamespace(co2_entity="IndoorEnvironmentObserved", context=None))
    reading = {"kind": "fill", "observed": "2026-01-02T03:00:00.000Z",
               "values": {"fill_level": 0.5, "temperature_c": 71.0}}
    alarm = {"kind": "event", "observed": "2026-01-02T03:00:00.000Z",
             "values": {"event": "fire", "value": 71}}
    older = dict(reading, observed="2026-01-02T02:50:00.000Z",
                 values={"fill_level": 0.4, "temperature_c": 20.0})
    rows = [(seq, "k%d" % seq, "glass-1", body["kind"], 0.0, json.dumps(body))
            for seq, body in enumerate((reading, alarm, older))]
    entity, = NgsiLdForwarder.entities(forwarder, rows)
    assert entity["status"]["value"] == "burning"
    assert entity["fillingLevel"]["value"] == 0.5  # the newest reading, not the older one
    assert validate(entity) == []
