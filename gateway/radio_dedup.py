# Copies of one LoRa frame heard by several receivers (packet-forwarder gateways, a serial
# bridge, the SPI radio) arrive within a few hundred milliseconds of each other. This stage
# in front of the pipeline holds the first copy for `window_s`, collects the others, and
# hands the pipeline the copy with the best radio metadata (highest SNR, then RSSI) first,
# with the names of all receivers in its radio metadata: that copy is stored, and the
# downlink goes back through its receiver, once. The other copies follow without a reply
# path, so the pipeline only adds them to the frame's list of receivers. A copy that comes
# after the window but within `late_s` of the first, from a receiver that had not heard it,
# is such a silent duplicate too. The same bytes again from a receiver that already heard
# them, or later than late_s, are a retransmission (the node missed its receipt) and are
# answered again.
import asyncio
import collections
import dataclasses
import time

_NONE = float("-inf")


def rank(up):
    """Best copy first: higher SNR, then higher RSSI; unknown values last."""
    r = up.radio
    snr, rssi = r.get("snr"), r.get("rssi")
    return (_NONE if snr is None else snr, _NONE if rssi is None else rssi)


class RadioDedup:
    def __init__(self, *, sink, window_s=0.2, late_s=3.0, clock=time.monotonic):
        self.sink = sink
        self.window_s = window_s
        self.late_s = max(late_s, window_s)
        self.clock = clock
        self.pending = {}  # frame bytes -> [copies]
        self.recent = collections.OrderedDict()  # frame bytes -> (first heard, receivers)

    def submit(self, up):
        """Called by radio ingresses instead of the pipeline's submit; never blocks."""
        now = self.clock()
        self._forget(now)
        copies = self.pending.get(up.raw)
        if copies is not None:
            copies.append(up)
            return
        seen = self.recent.get(up.raw)
        if seen is not None and now - seen[0] <= self.late_s and up.receiver not in seen[1]:
            seen[1].add(up.receiver)
            self.sink(dataclasses.replace(up, reply=None))
            return
        self.recent[up.raw] = (now, {up.receiver})
        self.recent.move_to_end(up.raw)
        self.pending[up.raw] = [up]
        if self.window_s <= 0:
            self._flush(up.raw)
        else:
            asyncio.get_running_loop().call_later(self.window_s, self._flush, up.raw)

    def flush_all(self):
        """Hand over everything still held (the gateway is stopping)."""
        for raw in list(self.pending):
            self._flush(raw)

    def _flush(self, raw):
        copies = self.pending.pop(raw, None)
        if not copies:
            return
        seen = self.recent.get(raw)
        if seen is not None:
            seen[1].update(c.receiver for c in copies)
        copies.sort(key=rank, reverse=True)
        best = copies[0]
        if len(copies) > 1:
            names = [c.receiver for c in copies]
            best = dataclasses.replace(best, radio=dict(best.radio, receivers=names))
        self.sink(best)
        for other in copies[1:]:
            self.sink(dataclasses.replace(other, reply=None))

    def _forget(self, now):
        while self.recent:
            raw, (first, _) = next(iter(self.recent.items()))
            if now - first <= self.late_s or raw in self.pending:
                break
            del self.recent[raw]
