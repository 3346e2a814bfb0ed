# The gateway's durable state in one SQLite file (WAL): per-device counters, the frames
# accepted (for deduplication), the output records (the outbox, and the readings the API
# serves), one cursor per forwarder, and the command queue. One connection, used from the
# event loop, but for the COMMIT of the pipeline's groups (group_transaction); the pipeline
# groups many uplinks into one transaction. The forwarders read the outbox on a connection
# of their own, which sees committed transactions only.
import asyncio
import json
import logging
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager

from gateway.errors import StoreError
from gateway.logs import event

log = logging.getLogger("gateway.store")

# Version 2. Every index keyed by device takes inserts all over itself (frames come from
# every device in turn), so at high rates each costs about a page written to the WAL per
# frame: only frames' (device_id, fcnt) and the readings' per-device index are kept. The
# records' idempotency key is unique because its frame is; their seq comes from the store
# (no AUTOINCREMENT, which costs an UPDATE of sqlite_sequence per record).
SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS device_state (
    device_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,          -- fingerprint of the key the counters belong to
    up_newest INTEGER,             -- replay window: newest uplink counter accepted
    up_seen INTEGER NOT NULL DEFAULT 0,  -- and the bitmap of the 64 counters up to it
    down_fcnt INTEGER NOT NULL DEFAULT 0, -- next downlink counter to use
    last_seen REAL,
    last_source TEXT,
    uplinks INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS frames (
    device_id TEXT NOT NULL,
    fcnt INTEGER NOT NULL,
    raw BLOB NOT NULL,
    received REAL NOT NULL,
    receivers TEXT NOT NULL,       -- JSON list of {source, receiver, radio...}
    UNIQUE (device_id, fcnt)
);
CREATE INDEX IF NOT EXISTS frames_received ON frames (received);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,       -- outbox order, never reused (Store._next_seq)
    key TEXT NOT NULL,             -- idempotency key "<device>:<counter>:<index>"
    device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    observed REAL NOT NULL,
    received REAL NOT NULL,
    body TEXT NOT NULL             -- the normalised record, JSON
);
CREATE INDEX IF NOT EXISTS records_device ON records (device_id, kind, seq);
CREATE TABLE IF NOT EXISTS cursors (
    forwarder TEXT PRIMARY KEY,
    seq INTEGER NOT NULL           -- every record up to here is confirmed by this forwarder
);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    command_id INTEGER NOT NULL,   -- 16-bit id on air
    name TEXT NOT NULL,
    arg TEXT NOT NULL,             -- JSON
    state TEXT NOT NULL,           -- queued | sent | acked | failed | expired
    result TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_pending ON commands (device_id, state, id);
"""

# From version 1 (user_version 0): frames WITHOUT ROWID keyed by (device_id, fcnt), records
# with AUTOINCREMENT and a UNIQUE key, device_state with last_radio. Rows are copied.
_FROM_V1 = """
DROP INDEX IF EXISTS frames_received;
DROP INDEX IF EXISTS records_device;
ALTER TABLE frames RENAME TO frames_v1;
ALTER TABLE records RENAME TO records_v1;
%s
INSERT INTO frames (device_id, fcnt, raw, received, receivers)
    SELECT device_id, fcnt, raw, received, receivers FROM frames_v1 ORDER BY received;
INSERT INTO records SELECT seq, key, device_id, kind, observed, received, body FROM records_v1;
DROP TABLE frames_v1;
DROP TABLE records_v1;
ALTER TABLE device_state DROP COLUMN last_radio;
"""


WAL_LIMIT = 4 << 20  # bytes the WAL file is truncated to after a checkpoint


class Store:
    def __init__(self, path, *, synchronous="full"):
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.path = path
        try:
            self._open(path, synchronous)
        except sqlite3.DatabaseError as e:  # not a database, corrupt, read-only, locked...
            raise StoreError(path, "cannot use it as the gateway's store: %s" % e) from None

    def _open(self, path, synchronous):
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a transaction is on disk when COMMIT returns, so a receipt (sent after the
        # commit) never promises a reading that a power cut could still take away.
        self._synchronous = "FULL" if synchronous == "full" else "NORMAL"
        self.db.execute("PRAGMA synchronous=%s" % self._synchronous)
        self.db.execute("PRAGMA busy_timeout=5000")
        # A WAL file keeps its largest size unless told otherwise; the disk quota counts on it.
        self.db.execute("PRAGMA journal_size_limit=%d" % WAL_LIMIT)
        self._create_or_migrate()
        self._page_size = self.db.execute("PRAGMA page_size").fetchone()[0]  # fixed once created
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._reader.execute("PRAGMA query_only=1")
        self._in_tx = False
        # Held from BEGIN to the end of COMMIT, so that no other transaction starts on the
        # connection while a group commits on the committer thread (which releases it).
        self._lock = threading.Lock()
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="store-commit")
        self._cursors = {}  # forwarder -> confirmed seq not written yet
        # Devices that may have commands to deliver (None: to be read again). Asking SQLite
        # on every uplink would cost three statements per frame for the rare device that
        # has a command waiting.
        self._pending_devices = None
        self._next_seq = self._first_free_seq()

    def _create_or_migrate(self):
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(self.path, "its schema is version %d, newer than this gateway's "
                             "(%d): run the gateway version that wrote it"
                             % (version, SCHEMA_VERSION))
        if version == SCHEMA_VERSION:
            return
        old = version == 0 and self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='records'").fetchone()
        # One transaction: a migration cut short (an error, a power cut) leaves the old
        # schema, and runs again on the next start.
        script = (_FROM_V1 % _SCHEMA) if old else _SCHEMA
        try:
            self.db.executescript("BEGIN IMMEDIATE;\n%s\nPRAGMA user_version=%d;\nCOMMIT;"
                                  % (script, SCHEMA_VERSION))
        except sqlite3.Error:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        if old:
            event(log, logging.WARNING, "store_migrated", path=self.path,
                  reason="schema version 1 -> %d" % SCHEMA_VERSION)

    def _first_free_seq(self):
        """Records are deleted once every forwarder confirmed them, so the largest seq left
        can be below one used before; but no cursor is below a deleted record. (With no
        forwarder at all a seq may come again after all records went: nothing follows it.)"""
        row = self.db.execute("SELECT MAX(COALESCE((SELECT MAX(seq) FROM records), 0), "
                              "COALESCE((SELECT MAX(seq) FROM cursors), 0))").fetchone()
        return row[0] + 1

    def close(self):
        self._committer.shutdown(wait=True)
        if self._cursors:
            with self.transaction(durable=False):
                pass  # writes them
        self._reader.close()
        self.db.close()

    @contextmanager
    def transaction(self, *, durable=True):
        """durable=False: the COMMIT does not wait for the disk (WAL, synchronous NORMAL).
        For writes whose loss in a power cut only repeats work, such as a forwarder's
        cursor (the records are sent again): the next durable commit syncs them too, as
        the WAL is written in order."""
        if self._in_tx:  # nested: part of the outer transaction
            yield
            return
        # First wait for a group that is committing: until its COMMIT ran, anything done
        # on the connection (a PRAGMA synchronous included) would be part of it.
        self._lock.acquire()
        relax = not durable and self._synchronous == "FULL"
        try:
            if relax:
                self.db.execute("PRAGMA synchronous=NORMAL")
            with self._statements():
                yield
            self._commit()
        finally:
            try:
                if relax:
                    self.db.execute("PRAGMA synchronous=FULL")
            finally:
                self._lock.release()

    @asynccontextmanager
    async def group_transaction(self):
        """A durable transaction like transaction(), whose COMMIT runs on the committer
        thread: the event loop goes on (forwarding, reading datagrams) while the disk
        syncs, and the caller resumes once the transaction is durable. The body must not
        await: everything else that uses the connection runs in between."""
        self._lock.acquire()
        try:
            with self._statements():
                yield
        except BaseException:
            self._lock.release()
            raise
        # Until the COMMIT returned, another transaction waits for the lock and the
        # forwarders' reader does not see this one. Shielded: a caller cancelled meanwhile
        # must not cancel the COMMIT before it started, which would keep the lock.
        loop = asyncio.get_running_loop()
        await asyncio.shield(loop.run_in_executor(self._committer, self._commit, True))

    @contextmanager
    def _statements(self):
        """BEGIN, the cursors waiting to be written, the body; ROLLBACK if it raises."""
        self.db.execute("BEGIN IMMEDIATE")
        self._in_tx = True
        try:
            for forwarder, seq in self._cursors.items():
                self._write_cursor(forwarder, seq)
            self._cursors.clear()
            yield
        except BaseException:
            self._rollback()
            raise
        finally:
            self._in_tx = False

    def _commit(self, release=False):
        try:
            self.db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        finally:
            if release:
                self._lock.release()

    def _rollback(self):
        if self.db.in_transaction:  # a failed COMMIT may have rolled back already
            self.db.execute("ROLLBACK")
        self._pending_devices = None  # commands may have changed state and back

    # -- device counters ---------------------------------------------------------------------

    def device_states(self):
        rows = self.db.execute("SELECT device_id, key_id, up_newest, up_seen, down_fcnt, "
                               "last_seen, uplinks FROM device_state")
        return {r[0]: {"key_id": r[1], "up_newest": r[2], "up_seen": _unsigned64(r[3]),
                       "down_fcnt": r[4], "last_seen": r[5], "uplinks": r[6]} for r in rows}

    def reset_device(self, device_id, key_id):
        """Counters start again (a new device, or a new key)."""
        self.db.execute("INSERT INTO device_state (device_id, key_id, up_newest, up_seen, "
                        "down_fcnt) VALUES (?, ?, NULL, 0, 0) ON CONFLICT (device_id) DO "
                        "UPDATE SET key_id=excluded.key_id, up_newest=NULL, up_seen=0, "
                        "down_fcnt=0", (device_id, key_id))
        self.db.execute("DELETE FROM frames WHERE device_id=?", (device_id,))

    def save_uplink_state(self, device_id, newest, seen, received, source, downlinks=0):
        """The replay window after an accepted uplink; reserves `downlinks` downlink
        counters in the same statement and returns the first."""
        return self.db.execute("UPDATE device_state SET up_newest=?, up_seen=?, last_seen=?, "
                               "last_source=?, uplinks=uplinks+1, down_fcnt=down_fcnt+? WHERE "
                               "device_id=? RETURNING down_fcnt-?",
                               (newest, _signed64(seen), received, source, downlinks, device_id,
                                downlinks)).fetchone()[0]

    def reserve_down_fcnt(self, device_id, n):
        """Reserve the device's next n downlink counters (stored before any frame is sent,
        so none is ever used twice); returns the first."""
        return self.db.execute("UPDATE device_state SET down_fcnt=down_fcnt+? WHERE "
                               "device_id=? RETURNING down_fcnt-?",
                               (n, device_id, n)).fetchone()[0]

    # -- frames (deduplication) ---------------------------------------------------------------

    def frame(self, device_id, fcnt):
        row = self.db.execute("SELECT raw, receivers FROM frames WHERE device_id=? AND fcnt=?",
                              (device_id, fcnt)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def add_frame(self, device_id, fcnt, raw, received, receiver):
        """Store an accepted frame; False when one with this counter is already stored."""
        cur = self.db.execute("INSERT OR IGNORE INTO frames VALUES (?, ?, ?, ?, ?)",
                              (device_id, fcnt, raw, received, json.dumps([receiver])))
        return cur.rowcount == 1

    def set_receivers(self, device_id, fcnt, receivers):
        self.db.execute("UPDATE frames SET receivers=? WHERE device_id=? AND fcnt=?",
                        (json.dumps(receivers), device_id, fcnt))

    def prune_frames(self, before):
        self.db.execute("DELETE FROM frames WHERE received < ?", (before,))

    # -- records (outbox) ---------------------------------------------------------------------

    def add_record(self, key, device_id, kind, observed, received, body):
        """Only for the records of a frame add_frame() just stored, which makes key unique.
        A seq taken by a transaction rolled back is not used again: a gap is harmless."""
        seq = self._next_seq
        self._next_seq += 1
        self.db.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (seq, key, device_id, kind, observed, received, body))

    def records_after(self, seq, limit):
        """The committed records after seq (on the forwarders' connection: a group that
        is still committing is not there yet)."""
        return self._reader.execute("SELECT seq, key, device_id, kind, received, body "
                                    "FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
                                    (seq, limit)).fetchall()

    def last_seq(self):
        return self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()[0]

    def cursor(self, forwarder):
        row = self.db.execute("SELECT seq FROM cursors WHERE forwarder=?", (forwarder,)).fetchone()
        return row[0] if row else 0

    def set_cursor(self, forwarder, seq):
        """Every record up to seq is confirmed by this forwarder. Not durable (a cursor lost
        in a power cut only sends those records again), and while a group commits it is
        written with the next transaction (under load, the next group's; at the latest on
        close) rather than have the event loop wait."""
        if self._in_tx:
            self._write_cursor(forwarder, seq)
            return
        self._cursors[forwarder] = seq
        if not self._lock.locked():
            with self.transaction(durable=False):
                pass  # _statements() writes it

    def _write_cursor(self, forwarder, seq):
        self.db.execute("INSERT INTO cursors VALUES (?, ?) ON CONFLICT (forwarder) DO UPDATE "
                        "SET seq=MAX(seq, excluded.seq)", (forwarder, seq))

    def backlog(self, seq):
        """(count, oldest receive time) of the records after seq."""
        row = self.db.execute("SELECT COUNT(*), MIN(received) FROM records WHERE seq > ?",
                              (seq,)).fetchone()
        return row[0], row[1]

    def prune_records(self, confirmed_seq, before):
        """Delete records every forwarder has confirmed that are older than the retention."""
        self.db.execute("DELETE FROM records WHERE seq <= ? AND received < ?",
                        (confirmed_seq, before))

    def device_records(self, device_id, limit=100, kind=None):
        if kind:
            rows = self.db.execute("SELECT body FROM records WHERE device_id=? AND kind=? "
                                   "ORDER BY seq DESC LIMIT ?", (device_id, kind, limit))
        else:
            rows = self.db.execute("SELECT body FROM records WHERE device_id=? "
                                   "ORDER BY seq DESC LIMIT ?", (device_id, limit))
        return [json.loads(r[0]) for r in rows]

    def used_bytes(self):
        """What the store holds: its pages in use (free pages, left by deletions, are
        reused before the file grows). The WAL comes on top, truncated to WAL_LIMIT after
        each checkpoint."""
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        free = self.db.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * self._page_size

    def prune_for_quota(self, confirmed_seq, target_bytes, frames_before, chunk=500,
                        max_chunks=40):
        """Make room under the disk quota: frames older than frames_before, then confirmed
        records oldest first, whatever their retention, until the store uses target_bytes
        or less. Unconfirmed records are never touched. At most max_chunks deletions per
        call, so that the event loop is not held for long; the next call goes on. Returns
        the records deleted."""
        self.db.execute("DELETE FROM frames WHERE received < ?", (frames_before,))
        deleted = 0
        for _ in range(max_chunks):
            if self.used_bytes() <= target_bytes:
                break
            cur = self.db.execute("DELETE FROM records WHERE seq IN (SELECT seq FROM records "
                                  "WHERE seq <= ? ORDER BY seq LIMIT ?)", (confirmed_seq, chunk))
            if cur.rowcount <= 0:
                break
            deleted += cur.rowcount
        return deleted

    # -- commands ------------------------------------------------------------------------------

    def add_command(self, device_id, name, arg, ttl_s, now=None):
        now = time.time() if now is None else now
        with self.transaction():
            cur = self.db.execute("INSERT INTO commands (device_id, command_id, name, arg, "
                                  "state, created, expires, updated) VALUES (?, 0, ?, ?, "
                                  "'queued', ?, ?, ?)",
                                  (device_id, name, json.dumps(arg), now, now + ttl_s, now))
            row_id = cur.lastrowid
            # The id on air is 16 bits; the row id keeps growing, so ids repeat only after
            # 65,536 commands, long after an old one was acknowledged or expired.
            self.db.execute("UPDATE commands SET command_id=? WHERE id=?", (row_id & 0xFFFF, row_id))
        if self._pending_devices is not None:
            self._pending_devices.add(device_id)
        return self.command(row_id)

    def command(self, row_id):
        row = self.db.execute("SELECT * FROM commands WHERE id=?", (row_id,)).fetchone()
        return _command(row) if row else None

    def commands(self, device_id, limit=50):
        rows = self.db.execute("SELECT * FROM commands WHERE device_id=? ORDER BY id DESC "
                               "LIMIT ?", (device_id, limit))
        return [_command(r) for r in rows]

    def pending_commands(self, device_id, now, max_attempts, limit):
        """The oldest commands still to deliver; expires and fails the ones past their
        time or their attempts on the way."""
        if self._pending_devices is None:
            self._pending_devices = {r[0] for r in self.db.execute(
                "SELECT DISTINCT device_id FROM commands WHERE state IN ('queued', 'sent')")}
        if device_id not in self._pending_devices:
            return []
        self.db.execute("UPDATE commands SET state='expired', updated=? WHERE device_id=? AND "
                        "state IN ('queued', 'sent') AND expires < ?", (now, device_id, now))
        self.db.execute("UPDATE commands SET state='failed', result='no_ack', updated=? WHERE "
                        "device_id=? AND state='sent' AND attempts >= ?",
                        (now, device_id, max_attempts))
        rows = self.db.execute("SELECT * FROM commands WHERE device_id=? AND state IN "
                               "('queued', 'sent') ORDER BY id LIMIT ?", (device_id, limit))
        out = [_command(r) for r in rows]
        if not out:
            self._pending_devices.discard(device_id)
        return out

    def forget_pending(self):
        """After a rollback the store did not see (a savepoint): read the set again."""
        self._pending_devices = None

    def command_sent(self, row_id, now):
        self.db.execute("UPDATE commands SET state='sent', attempts=attempts+1, updated=? "
                        "WHERE id=?", (now, row_id))

    def command_unsent(self, row_id, now):
        """A send that never left the receiver does not count as an attempt."""
        self.db.execute("UPDATE commands SET attempts=MAX(attempts-1, 0), state=CASE WHEN "
                        "attempts<=1 THEN 'queued' ELSE 'sent' END, updated=? WHERE id=? AND "
                        "state='sent'", (now, row_id))
        self._pending_devices = None

    def command_acked(self, device_id, command_id, result, now):
        """Mark the newest sent command with this id as answered; its row or None."""
        row = self.db.execute("SELECT id FROM commands WHERE device_id=? AND command_id=? AND "
                              "state IN ('sent', 'queued') ORDER BY id DESC LIMIT 1",
                              (device_id, command_id)).fetchone()
        if not row:
            return None
        state = "acked" if result == "ok" else "failed"
        self.db.execute("UPDATE commands SET state=?, result=?, updated=? WHERE id=?",
                        (state, result, now, row[0]))
        return self.command(row[0])


def _signed64(n):
    # The replay bitmap is 64 bits; SQLite integers are signed 64-bit, and a larger value
    # would silently become a lossy REAL.
    return n - (1 << 64) if n >= 1 << 63 else n


def _unsigned64(n):
    n = int(n)
    return n + (1 << 64) if n < 0 else n


_COMMAND_FIELDS = ("id", "device_id", "command_id", "name", "arg", "state", "result",
                   "attempts", "created", "expires", "updated")


def _command(row):
    out = dict(zip(_COMMAND_FIELDS, row))
    out["arg"] = json.loads(out["arg"])
    return out
