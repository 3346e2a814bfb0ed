# The one pipeline between ingress adapters and forwarders:
#   size -> header -> registry -> counter -> replay window -> MIC -> decrypt -> CBOR ->
#   schema -> deduplicate -> normalise -> outbox (SQLite) -> receipt / command downlinks.
# Uplinks are taken in groups and stored in one transaction; receipts go out only after the
# COMMIT, so a receipt always means "stored". Every rejection is counted by reason and
# logged with the device id; nothing an uplink contains can stop the loop.
import asyncio
import collections
import json
import logging
import sqlite3
import time

from protocol import command, counters, frame, names, schema
from protocol.errors import (DecodeError, FrameError, MICError, ProtocolError, ReplayError,
                             SchemaError)

from gateway import codec, normalise
from gateway.logs import event

log = logging.getLogger("gateway.pipeline")

UPLINK_KINDS = {schema.FILL: "fill", schema.PARKING: "parking", schema.CO2: "co2",
                schema.LUMINAIRE: "luminaire", schema.STATUS: "status", schema.EVENT: "event",
                schema.ACK: "ack", schema.BATCH: "batch"}
READING_KINDS = ("fill", "parking", "co2", "luminaire")
# Commands sent in one reply window; a node's window is short, and more wait for the next.
COMMANDS_PER_REPLY = 4


class Rejected(Exception):
    """A frame the gateway refuses for a reason of its own (not a protocol error)."""

    def __init__(self, reason, message, device="unknown"):
        super().__init__(message)
        self.reason = reason
        self.device = device


def reason_of(exc):
    """The rejection reason for a protocol error: its class says what went wrong."""
    for cls, reason in ((MICError, "bad_mic"), (ReplayError, "replay"),
                        (SchemaError, "bad_body"), (DecodeError, "bad_body"),
                        (FrameError, "bad_frame")):
        if isinstance(exc, cls):
            return reason
    return "protocol_error"


class Pipeline:
    def __init__(self, *, gateway_id, store, registry, metrics, commands, queue_max=10000,
                 batch_max=256, quota_bytes=None, on_commit=None):
        self.gateway_id = gateway_id
        self.store = store
        self.registry = registry
        self.metrics = metrics
        self.commands = commands
        self.batch_max = batch_max
        self.quota_bytes = quota_bytes
        self.store_full = False  # set by the maintenance task from the store's size
        self.on_commit = on_commit or (lambda: None)
        self.queue = asyncio.Queue(maxsize=queue_max)
        self.processed = 0  # uplinks handled (accepted, duplicate or rejected)
        self._children = {}  # (metric, label) -> its child: labels() is slow per frame
        # Command frames recently handed to an ingress -> (device id, command row), so a
        # receiver that could not send one can give its attempt back (downlink_failed).
        self._sent_commands = collections.OrderedDict()

    # -- ingress side -----------------------------------------------------------------------

    def submit(self, uplink):
        """Called by ingress adapters; never blocks. A full queue drops the uplink (a Wi-Fi
        node gets no receipt and sends it again later)."""
        self._child(self.metrics.frames, uplink.source).inc()
        try:
            self.queue.put_nowait(uplink)
        except asyncio.QueueFull:
            self._count_reject(uplink, "overload", "pipeline queue full", "unknown")

    async def run(self):
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.batch_max:
                try:
                    batch.append(self.queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            # The COMMIT runs on the store's thread: meanwhile the forwarders publish and
            # the ingresses read the next uplinks.
            try:
                async with self.store.group_transaction():
                    outcome = self._store_group(batch)
            except sqlite3.Error as e:
                self._not_stored(batch, e)
            else:
                self._answer_group(batch, outcome)
            await asyncio.sleep(0)  # let ingress and forwarders run between groups

    # -- the pipeline proper ----------------------------------------------------------------

    def process(self, uplinks):
        """Verify, store and answer a group of uplinks in one transaction, committed on
        this thread (run() commits on the store's)."""
        try:
            with self.store.transaction():
                outcome = self._store_group(uplinks)
        except sqlite3.Error as e:
            self._not_stored(uplinks, e)
        else:
            self._answer_group(uplinks, outcome)

    def _store_group(self, uplinks):
        """Verify and store the group, in the transaction; the replies to send and the
        replay windows to apply once it is committed ({entry: window}: a device's later
        frame in the group starts from the window its earlier one left)."""
        replies, applied = [], {}
        for up in uplinks:
            self._one(up, replies, applied)
        return replies, applied

    def _not_stored(self, uplinks, error):
        # Nothing of this group is stored: send no receipt (the nodes will send again),
        # and take the counters back to what the database holds.
        for up in uplinks:
            self._count_reject(up, "store_error", str(error), "unknown")
        self.registry.load()

    def _answer_group(self, uplinks, outcome):
        """The group is committed: only now are receipts sent."""
        replies, applied = outcome
        for entry, window in applied.items():
            entry.window = window
        self.processed += len(uplinks)
        for send, data, kind, device_id in replies:
            try:
                send(data)
                self._child(self.metrics.downlinks, kind).inc()
            except OSError as e:
                event(log, logging.WARNING, "downlink_failed", device=device_id, kind=kind,
                      reason=str(e))
        self.on_commit()

    def _one(self, up, replies, applied):
        device_id = "unknown"
        db = self.store.db
        db.execute("SAVEPOINT uplink")
        try:
            device_id = self._verify_and_store(up, replies, applied)
        except ProtocolError as e:
            db.execute("ROLLBACK TO uplink")
            self._count_reject(up, reason_of(e), str(e), getattr(e, "device_id", device_id))
        except Rejected as e:
            db.execute("ROLLBACK TO uplink")
            self._count_reject(up, e.reason, str(e), e.device)
        except sqlite3.Error:
            raise
        except Exception as e:  # a bug must cost one frame, not the gateway
            db.execute("ROLLBACK TO uplink")
            self.store.forget_pending()
            log.exception("pipeline_error", extra={"fields": {"device": device_id,
                                                              "reason": repr(e)}})
            self._count_reject(up, "internal_error", repr(e), device_id)
        finally:
            db.execute("RELEASE uplink")

    def _verify_and_store(self, up, replies, applied):
        raw = up.raw
        if len(raw) < frame.OVERHEAD + 1:
            raise Rejected("truncated", "frame of %d bytes is truncated" % len(raw))
        if len(raw) > frame.MAX_FRAME:
            raise Rejected("oversized", "frame of %d bytes is oversized" % len(raw))
        hdr = frame.parse_header(raw)
        addr = "%06x" % hdr.addr
        entry = self.registry.by_addr.get(hdr.addr)
        if entry is None:
            raise Rejected("unknown_device", "no device with address %s" % addr, "addr:" + addr)
        dev = entry.device
        if hdr.direction != frame.UP:
            raise Rejected("wrong_direction", "a downlink frame arrived on the uplink path", dev.id)
        if not dev.enabled:
            raise Rejected("disabled", "device is disabled in the inventory", dev.id)
        kind = UPLINK_KINDS.get(hdr.kind)
        if kind is None:
            raise Rejected("unknown_kind", "message kind %d is not an uplink kind" % hdr.kind,
                           dev.id)
        if kind in READING_KINDS and kind != dev.kind:
            raise Rejected("kind_mismatch", "a %s reading from a %s device" % (kind, dev.kind),
                           dev.id)
        before = applied.get(entry, entry.window)
        try:
            fcnt = counters.full_counter(before.newest, hdr.fcnt_low)
        except ReplayError as e:
            e.device_id = dev.id
            raise
        window = counters.ReplayWindow(before.newest, before.seen)
        receiver = dict(up.radio, source=up.source, received=up.received)
        try:
            window.check(fcnt)
        except ReplayError as e:
            self._duplicate_or_replay(up, entry, fcnt, receiver, e, replies)
            return dev.id
        try:
            body = codec.unseal(entry.keys, raw, fcnt)
            message = codec.decode(hdr.kind, body)
        except MICError as e:
            e.device_id = dev.id
            self._old_replay(entry, raw, fcnt)
            raise
        except ProtocolError as e:
            e.device_id = dev.id
            raise
        if kind == "batch" and message["kind"] != dev.kind:
            raise Rejected("kind_mismatch", "a batch of %s from a %s device"
                           % (message["kind"], dev.kind), dev.id)
        if self.store_full:
            raise Rejected("store_full", "the store has reached its disk quota", dev.id)
        window.accept(fcnt)  # only now: the MIC is verified
        if not self.store.add_frame(dev.id, fcnt, raw, up.received, receiver):
            # Stored, though the window did not know it (it never should): the frames table
            # is the truth, so this is a duplicate or a replay like any other.
            self._duplicate_or_replay(up, entry, fcnt, receiver,
                                      ReplayError("frame: counter %d was already accepted" % fcnt),
                                      replies)
            return dev.id
        if kind == "ack":
            self._acked(dev, message, up.received)
        for rkind, index, age_s, values in normalise.readings(kind, message):
            observed = up.received - age_s
            key = "%s:%d:%d" % (dev.record_prefix, fcnt, index)
            body_json = _json({
                "key": key, "device": dev.id, "kind": rkind, "fcnt": fcnt, "index": index,
                "observed": normalise.iso(observed), "received": normalise.iso(up.received),
                "gateway": self.gateway_id, "source": up.source, "radio": up.radio,
                "values": values})
            self.store.add_record(key, dev.id, rkind, observed, up.received, body_json)
            self._child(self.metrics.records, rkind).inc()
        cmds = self._commands(up, dev)
        down = self.store.save_uplink_state(dev.id, window.newest, window.seen, up.received,
                                            up.source, _downlinks(up, cmds))
        self._answer(up, entry, fcnt, cmds, down, replies)
        applied[entry] = window  # last: a frame that fails on the way leaves it as it was
        self._child(self.metrics.accepted, up.source).inc()
        self._child(self.metrics.last_seen, dev.id).set(up.received)
        event(log, logging.DEBUG, "frame_accepted", device=dev.id, fcnt=fcnt, kind=kind,
              source=up.source)
        return dev.id

    def _old_replay(self, entry, raw, fcnt):
        """A frame older than the replay window is reconstructed 65,536 counters too high and
        fails its MIC; if it verifies one epoch lower it is an authentic old frame: call it
        a replay, not a forgery (one more CMAC, only for frames that failed already)."""
        if fcnt < 0x10000:
            return
        try:
            codec.unseal(entry.keys, raw, fcnt - 0x10000)
        except ProtocolError:
            return
        e = ReplayError("frame: counter %d is older than the replay window (newest %s)"
                        % (fcnt - 0x10000, entry.window.newest))
        e.device_id = entry.device.id
        raise e

    def _duplicate_or_replay(self, up, entry, fcnt, receiver, error, replies):
        """A counter already accepted: the same frame heard again (another receiver, or a
        node that missed its receipt) is a duplicate and answered again; anything else with
        that counter is a replay. The MIC is checked first so a forgery is called one."""
        dev = entry.device
        try:
            codec.unseal(entry.keys, up.raw, fcnt)
        except ProtocolError as e:
            e.device_id = dev.id
            raise
        stored = self.store.frame(dev.id, fcnt)
        if stored is None or bytes(stored[0]) != up.raw:
            error.device_id = dev.id
            raise error
        receivers = stored[1]
        if receiver not in receivers:
            receivers.append(receiver)
            self.store.set_receivers(dev.id, fcnt, receivers)
        self.metrics.duplicates.labels(up.source).inc()
        event(log, logging.DEBUG, "frame_duplicate", device=dev.id, fcnt=fcnt, source=up.source,
              reason="already stored")
        cmds = self._commands(up, dev)
        n = _downlinks(up, cmds)
        down = self.store.reserve_down_fcnt(dev.id, n) if n else None
        self._answer(up, entry, fcnt, cmds, down, replies)

    def _acked(self, dev, message, now):
        result = names.ACK_RESULTS.get(message["result"], str(message["result"]))
        cmd = self.store.command_acked(dev.id, message["command_id"], result, now)
        event(log, logging.INFO, "command_acked", device=dev.id,
              command_id=message["command_id"], result=result,
              command=cmd["name"] if cmd else "unknown",
              reason="ack" if cmd else "no pending command with this id")

    def _commands(self, up, dev):
        """The commands to send after the receipt (none without a way back)."""
        if up.reply is None:
            return []
        return self.store.pending_commands(dev.id, up.received, self.commands.max_attempts,
                                           COMMANDS_PER_REPLY)

    def _answer(self, up, entry, fcnt, cmds, down, replies):
        """A receipt that says how many commands follow, then those commands: sealed with
        the downlink counters from down on, reserved (in this transaction) by the caller
        before anything is sent."""
        if up.reply is None:
            return
        dev = entry.device
        body = codec.receipt(fcnt, len(cmds))
        replies.append((up.reply, codec.seal(entry.keys, schema.RECEIPT, dev.addr, down, body,
                                             frame.DOWN), "receipt", dev.id))
        for cmd in cmds:
            down += 1
            body = command.encode(cmd["command_id"], cmd["name"], cmd["arg"])
            data = codec.seal(entry.keys, schema.COMMAND, dev.addr, down, body, frame.DOWN)
            replies.append((up.reply, data, "command", dev.id))
            self.store.command_sent(cmd["id"], up.received)
            self._sent_commands[data] = (dev.id, cmd["id"], cmd["command_id"])
            while len(self._sent_commands) > 4096:
                self._sent_commands.popitem(last=False)
            event(log, logging.INFO, "command_sent", device=dev.id,
                  command_id=cmd["command_id"], command=cmd["name"],
                  attempt=cmd["attempts"] + 1, reason="pending command")

    def downlink_failed(self, data, reason):
        """Told by an ingress that a receiver could not send a downlink (no route, a
        TX_ACK error, a bridge's ERR): a command in it was not tried, so it goes back to
        the queue as it was and leaves with the device's next uplink. A lost receipt needs
        nothing: the node sends its frame again."""
        sent = self._sent_commands.pop(bytes(data), None)
        if sent is None:
            return
        device_id, row_id, command_id = sent
        self.store.command_unsent(row_id, time.time())
        event(log, logging.WARNING, "command_requeued", device=device_id,
              command_id=command_id, reason=reason)

    def _child(self, metric, label):
        child = self._children.get((metric, label))
        if child is None:
            child = self._children[(metric, label)] = metric.labels(label)
        return child

    def _count_reject(self, up, reason, message, device):
        self._child(self.metrics.rejected, reason).inc()
        event(log, logging.WARNING, "frame_rejected", device=device, reason=reason,
              detail=message, source=up.source, bytes=len(up.raw), **_peer(up))


# json.dumps with arguments builds an encoder per call.
_json = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def _downlinks(up, cmds):
    """Downlink counters an answer takes: a receipt and the commands after it."""
    return 0 if up.reply is None else 1 + len(cmds)


def _peer(up):
    peer = up.radio.get("peer")
    return {"peer": peer} if peer else {}
