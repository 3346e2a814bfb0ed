# The store's schema: a device's frames in one group all enter its replay window, an outbox
# seq is never given twice, a store of schema version 1 is migrated with its rows, and a
# store file that cannot be used stops the gateway with its name.
import asyncio
import dataclasses
import json
import sqlite3
import time

import pytest

from protocol import frame, schema

from gateway import __main__ as gateway_main
from gateway import config as config_mod
from gateway.app import Gateway
from gateway.errors import StoreError
from gateway.store import SCHEMA_VERSION, Store
from gateway.uplink import Uplink
from tests.gateway.harness import make_config
from tests.gateway.node import FILL

REJECTED = "cityedge_frames_rejected_total"


def _config(tmp_path, inv):
    cfg = make_config(tmp_path, inv)
    return config_mod.replace(cfg, udp=config_mod.UdpIngressConfig(enabled=False))


def _uplink(dev, fcnt, distance_mm=812):
    data = frame.seal(frame.Keys(dev.key), schema.FILL, dev.addr, fcnt,
                      schema.encode(schema.FILL, dict(FILL, distance_mm=distance_mm)))
    return Uplink(raw=data, source="test", received=time.time(), reply=lambda _: None)


def _count(gw, metric, **labels):
    return gw.metrics.registry.get_sample_value(metric, labels) or 0


def test_frames_of_one_device_in_one_group_all_enter_its_replay_window(tmp_path, fleet):
    """The later frame's window starts from the earlier one's, not from the last commit:
    otherwise counter 5 would be missing from the window, and once its frame is pruned
    from the store, a replay of it would pass."""
    inv, devices = fleet
    dev = devices[0]
    cfg = _config(tmp_path, inv)
    first = _uplink(dev, 5)

    async def one_group():
        async with Gateway(cfg, maintenance_s=60) as gw:
            gw.pipeline.process([first, _uplink(dev, 6)])
            assert _count(gw, "cityedge_frames_accepted_total", ingress="test") == 2
            assert gw.store.device_states()[dev.id]["up_seen"] & 0b11 == 0b11

    async def replay_after_restart():
        async with Gateway(cfg, maintenance_s=60) as gw:
            with gw.store.transaction():
                gw.store.prune_frames(time.time() + 1)  # as a day later
            gw.pipeline.process([dataclasses.replace(first, received=time.time())])
            assert _count(gw, REJECTED, reason="replay") == 1
            assert _count(gw, "cityedge_frames_accepted_total", ingress="test") == 0
    asyncio.run(one_group())
    asyncio.run(replay_after_restart())


def test_an_outbox_seq_is_not_given_again_after_its_record_was_pruned(tmp_path):
    path = str(tmp_path / "gw.sqlite")
    store = Store(path)
    with store.transaction():
        for n in range(3):
            store.add_record("dev:%d:0" % n, "dev", "fill", 1.0, 1.0, "{}")
    store.set_cursor("mqtt", 3)
    with store.transaction():
        store.prune_records(3, time.time())
    assert store.last_seq() == 0
    store.close()
    store = Store(path)
    with store.transaction():
        store.add_record("dev:3:0", "dev", "fill", 1.0, 1.0, "{}")
    assert [r[0] for r in store.records_after(3, 10)] == [4]
    store.close()


# Schema version 1, as gateways before version 2 wrote it.
_V1 = """
CREATE TABLE device_state (device_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, up_newest INTEGER,
    up_seen INTEGER NOT NULL DEFAULT 0, down_fcnt INTEGER NOT NULL DEFAULT 0, last_seen REAL,
    last_source TEXT, last_radio TEXT, uplinks INTEGER NOT NULL DEFAULT 0);
CREATE TABLE frames (device_id TEXT NOT NULL, fcnt INTEGER NOT NULL, raw BLOB NOT NULL,
    received REAL NOT NULL, receivers TEXT NOT NULL, PRIMARY KEY (device_id, fcnt)) WITHOUT ROWID;
CREATE INDEX frames_received ON frames (received);
CREATE TABLE records (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL, kind TEXT NOT NULL, observed REAL NOT NULL, received REAL NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX records_device ON records (device_id, kind, seq);
CREATE TABLE cursors (forwarder TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE commands (id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL,
    command_id INTEGER NOT NULL, name TEXT NOT NULL, arg TEXT NOT NULL, state TEXT NOT NULL,
    result TEXT, attempts INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, expires REAL NOT NULL,
    updated REAL NOT NULL);
CREATE INDEX commands_pending ON commands (device_id, state, id);
"""


def test_a_version_1_store_is_migrated_with_its_rows(tmp_path, fleet):
    """Counters, the frames kept for deduplication, records, cursors and commands carry
    over; a seq is not given again though AUTOINCREMENT no longer keeps it."""
    inv, devices = fleet
    dev = devices[0]
    cfg = _config(tmp_path, inv)
    seven = _uplink(dev, 7)
    now = time.time()
    db = sqlite3.connect(cfg.store.path)
    db.executescript(_V1)
    db.execute("INSERT INTO device_state VALUES (?, ?, 7, 1, 3, ?, 'udp', '{}', 8)",
               (dev.id, dev.key_id, now))
    db.execute("INSERT INTO frames VALUES (?, 7, ?, ?, ?)",
               (dev.id, seven.raw, now, json.dumps([{"source": "test"}])))
    for fcnt in range(8):
        db.execute("INSERT INTO records (key, device_id, kind, observed, received, body) "
                   "VALUES (?, ?, 'fill', ?, ?, '{}')", ("%s:%d:0" % (dev.id, fcnt), dev.id, now, now))
    db.execute("DELETE FROM records WHERE seq > 6")  # confirmed, then pruned
    db.execute("INSERT INTO cursors VALUES ('mqtt', 8)")
    db.execute("INSERT INTO commands (device_id, command_id, name, arg, state, created, "
               "expires, updated) VALUES (?, 1, 'reboot', 'null', 'queued', ?, ?, ?)",
               (dev.id, now, now + 3600, now))
    db.commit()
    db.close()
    sent = []

    async def scenario():
        async with Gateway(cfg, maintenance_s=60) as gw:
            assert gw.store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            columns = [r[1] for r in gw.store.db.execute("PRAGMA table_info(device_state)")]
            assert "last_radio" not in columns
            state = gw.store.device_states()[dev.id]
            assert (state["up_newest"], state["down_fcnt"], state["uplinks"]) == (7, 3, 8)
            assert [r[0] for r in gw.store.db.execute("SELECT seq FROM records")] == list(range(1, 7))
            gw.pipeline.process([dataclasses.replace(seven, reply=sent.append)])  # heard again
            assert _count(gw, "cityedge_frames_duplicate_total", ingress="test") == 1
            gw.pipeline.process([dataclasses.replace(_uplink(dev, 8), reply=sent.append)])
            assert [r[1] for r in gw.store.records_after(8, 10)] == ["%s:8:0" % dev.id]
            assert gw.store.records_after(8, 10)[0][0] == 9
            assert gw.store.commands(dev.id)[0]["state"] == "sent"
    asyncio.run(scenario())
    # Receipts and the queued command went out with the downlink counters from 3 on.
    keys = frame.Keys(dev.key)
    assert len(sent) >= 3
    for i, data in enumerate(sent):
        frame.unseal(keys, data, 3 + i)  # raises on a counter the frame was not sealed with


def _run_gateway(tmp_path, store_path, capsys):
    toml = tmp_path / "gateway.toml"
    toml.write_text('[gateway]\ninventory = "%s"\n[store]\npath = "%s"\n[http]\nenabled = false\n'
                    '[ingress.udp]\nport = 0\n' % (tmp_path / "none.toml", store_path))
    assert gateway_main.main(["--config", str(toml)]) == 1
    return capsys.readouterr().err


def test_a_file_that_is_not_a_store_stops_the_gateway_with_its_name(tmp_path, capsys):
    path = tmp_path / "gw.sqlite"
    path.write_bytes(b"this is not SQLite" * 300)
    err = _run_gateway(tmp_path, path, capsys)
    assert "%s: cannot use it as the gateway's store" % path in err
    assert path.read_bytes() == b"this is not SQLite" * 300


def test_a_store_from_a_newer_gateway_is_left_alone(tmp_path, capsys):
    path = tmp_path / "gw.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=%d" % (SCHEMA_VERSION + 1))
    db.close()
    with pytest.raises(StoreError, match="newer than this gateway's"):
        Store(str(path))
    err = _run_gateway(tmp_path, path, capsys)
    assert "%s: its schema is version %d" % (path, SCHEMA_VERSION + 1) in err
