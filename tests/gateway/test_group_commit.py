# The pipeline's COMMIT runs on the store's own thread (Store.group_transaction), so the
# event loop goes on while the disk syncs. These hold the COMMIT back (the committer thread
# is kept busy first) and look at a real SQLite file meanwhile: nothing of the group is
# visible to the forwarders, no other transaction slips in, and the caller resumes only
# once the group is committed.
import asyncio
import sqlite3
import threading

import pytest

from gateway.store import Store


def _add(store, n):
    store.add_record("dev:%d:0" % n, "dev", "fill", 1.0, 1.0, "{}")


async def _hold_committer(store):
    """Keep the committer thread busy until the returned event is set."""
    release = threading.Event()
    started = threading.Event()

    def hold():
        started.set()
        release.wait(10)
    asyncio.get_running_loop().run_in_executor(store._committer, hold)
    await asyncio.to_thread(started.wait, 10)
    return release


def test_a_group_reaches_the_forwarders_only_once_committed(tmp_path):
    store = Store(str(tmp_path / "gw.sqlite"))

    async def main():
        release = await _hold_committer(store)

        async def group():
            async with store.group_transaction():
                _add(store, 1)
                _add(store, 2)
        task = asyncio.create_task(group())
        await asyncio.sleep(0.05)
        assert not task.done()  # its COMMIT waits behind the held thread
        assert store.records_after(0, 10) == []  # the forwarders' connection
        # A cursor confirmed meanwhile does not make the loop wait: it goes with the next
        # transaction.
        store.set_cursor("mqtt", 1)
        release.set()
        await task
        assert [r[1] for r in store.records_after(0, 10)] == ["dev:1:0", "dev:2:0"]
        assert store.cursor("mqtt") == 0
        with store.transaction():
            pass
        assert store.cursor("mqtt") == 1
    asyncio.run(main())
    store.close()


def test_another_transaction_waits_for_a_group_that_is_committing(tmp_path):
    path = str(tmp_path / "gw.sqlite")
    store = Store(path)
    began = []

    async def main():
        release = await _hold_committer(store)

        async def group():
            async with store.group_transaction():
                _add(store, 1)
        task = asyncio.create_task(group())
        await asyncio.sleep(0.05)

        def other():  # a transaction begun elsewhere, e.g. a command from the HTTP API
            with store.transaction():
                # what is committed when it begins, read on a connection of its own
                began.append(sqlite3.connect(path).execute("SELECT key FROM records").fetchall())
                _add(store, 2)
        other_thread = threading.Thread(target=other)
        other_thread.start()
        await asyncio.sleep(0.05)
        assert began == []  # it waits: BEGIN now would be inside the group's transaction
        release.set()
        await task
        await asyncio.to_thread(other_thread.join, 10)
        assert began == [[("dev:1:0",)]]
    asyncio.run(main())
    assert [r[1] for r in store.records_after(0, 10)] == ["dev:1:0", "dev:2:0"]
    store.close()


def test_a_failing_group_is_rolled_back_and_the_store_stays_usable(tmp_path):
    store = Store(str(tmp_path / "gw.sqlite"))

    async def main():
        with pytest.raises(sqlite3.IntegrityError):
            async with store.group_transaction():
                _add(store, 1)
                store.db.execute("INSERT INTO cursors VALUES (NULL, NULL)")  # NOT NULL
        async with store.group_transaction():
            _add(store, 2)
    asyncio.run(main())
    assert [r[1] for r in store.records_after(0, 10)] == ["dev:2:0"]
    store.close()


def test_the_caller_resumes_once_the_group_is_committed(tmp_path):
    path = str(tmp_path / "gw.sqlite")
    store = Store(path)

    async def main():
        async with store.group_transaction():
            _add(store, 1)
    asyncio.run(main())
    # What a receipt sent now promises: another connection reads the group.
    db = sqlite3.connect(path)
    assert db.execute("SELECT key FROM records").fetchall() == [("dev:1:0",)]
    db.close()
    store.close()


def test_an_inventory_reload_while_a_group_commits_keeps_its_counters(tmp_path, fleet):
    """The reload waits for the COMMIT and takes the replay windows the store holds then:
    the entries it replaces have not been given the group's counters yet."""
    from protocol import frame, schema

    from gateway import config as config_mod
    from gateway.app import Gateway
    from gateway.uplink import Uplink
    from tests.gateway.harness import make_config
    from tests.gateway.node import FILL
    inv, devices = fleet
    dev = devices[0]
    cfg = config_mod.replace(make_config(tmp_path, inv),
                             udp=config_mod.UdpIngressConfig(enabled=False))
    raw = frame.seal(frame.Keys(dev.key), schema.FILL, dev.addr, 5,
                     schema.encode(schema.FILL, FILL))

    async def main():
        async with Gateway(cfg, maintenance_s=60) as gw:
            release = await _hold_committer(gw.store)
            gw.pipeline.submit(Uplink(raw=raw, source="test", received=1.0))
            await asyncio.sleep(0.05)
            assert gw.pipeline.processed == 0  # its COMMIT waits behind the held thread
            threading.Timer(0.2, release.set).start()
            gw.registry.load()  # as after an edit of the inventory; waits for the COMMIT
            while gw.pipeline.processed == 0:
                await asyncio.sleep(0.01)
            assert gw.registry.by_id[dev.id].window.newest == 5
    asyncio.run(main())
