# What every forwarder shares: the cursor loop over the outbox, and reconnection with
# exponential backoff. A subclass supplies connect() (an async context manager for one
# connection) and send(session, rows), which returns only when the next hop confirmed all
# rows and raises on anything else; or a _pump(session) of its own that calls confirmed()
# for every run of rows the next hop confirmed, in seq order.
import asyncio
import logging
import random
import time

from gateway.logs import event

log = logging.getLogger("gateway.forwarders")


class TransientError(Exception):
    """The next hop is unreachable or busy: try the same rows again later."""


class Forwarder:
    name = "forwarder"
    transient = (TransientError, OSError, asyncio.TimeoutError)

    def __init__(self, *, store, metrics, batch=200, backoff_min_s=0.5, backoff_max_s=30.0):
        self.store = store
        self.metrics = metrics
        self.batch = batch
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.wake = asyncio.Event()
        self.connected = False
        self.confirmed_seq = store.cursor(self.name)

    def notify(self):
        """New records were committed."""
        self.wake.set()

    def describe(self, exc):
        """What went wrong, for the log: the error, and what to check when it is ours."""
        return str(exc) or type(exc).__name__

    def connect(self):
        raise NotImplementedError

    async def send(self, session, rows):
        raise NotImplementedError

    async def run(self):
        delay = self.backoff_min_s
        while True:
            try:
                async with self.connect() as session:
                    self.connected = True
                    event(log, logging.INFO, "forwarder_connected", forwarder=self.name)
                    delay = self.backoff_min_s
                    await self._pump(session)
            except self.transient as e:
                self.metrics.forward_errors.labels(self.name).inc()
                event(log, logging.WARNING, "forwarder_down", forwarder=self.name,
                      reason=self.describe(e), retry_s=round(delay, 2))
            finally:
                self.connected = False
            # Jitter, so that many gateways do not all come back in the same instant.
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.backoff_max_s)

    async def _pump(self, session):
        while True:
            rows = self.store.records_after(self.confirmed_seq, self.batch)
            if not rows:
                self.wake.clear()
                rows = self.store.records_after(self.confirmed_seq, self.batch)
                if not rows:
                    await self.wake.wait()
                    continue
            await self.send(session, rows)
            self.confirmed(rows)

    def confirmed(self, rows):
        """The next hop confirmed rows, and every record before them: move the cursor."""
        last = rows[-1][0]
        self.store.set_cursor(self.name, last)
        self.confirmed_seq = last
        now = time.time()
        self.metrics.forwarded.labels(self.name).inc(len(rows))
        hist = self.metrics.forward_latency.labels(self.name)
        for row in rows:
            hist.observe(now - row[4])
