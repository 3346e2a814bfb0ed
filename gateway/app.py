# The gateway assembled from its config: store, registry, pipeline, the ingress adapters and
# forwarders the config asks for, the HTTP API, and a maintenance task. Used as
# `async with Gateway(config) as gw: await gw.serve_forever()`.
import asyncio
import contextlib
import logging
import time

from gateway import metrics as metrics_mod
from gateway.forwarders.mqtt import MqttForwarder
from gateway.ingress.udp import UdpIngress
from gateway.logs import event
from gateway.pipeline import Pipeline
from gateway.radio_dedup import RadioDedup
from gateway.registry import Registry
from gateway.store import Store

log = logging.getLogger("gateway.app")

FRAME_RETENTION_S = 86400  # frames kept for deduplication; the replay window covers the rest
QUOTA_FRAME_RETENTION_S = 600  # ... and near the disk quota: long enough for a node's resend


def build_ingresses(config, sink, *, radio_sink=None, metrics=None, downlink_failed=None):
    """The ingress adapters the config enables. Radio ingresses hand their uplinks to
    radio_sink (the deduplication in front of the pipeline), UDP to sink."""
    out = []
    if config.udp.enabled:
        out.append(UdpIngress(host=config.udp.host, port=config.udp.port, sink=sink))
    radio = dict(sink=radio_sink or sink, metrics=metrics, downlink_failed=downlink_failed)
    if config.semtech.enabled:
        from gateway.ingress.semtech_udp import SemtechUdpIngress
        c = config.semtech
        out.append(SemtechUdpIngress(host=c.host, port=c.port, gateway_euis=c.gateway_euis,
                                     rx_delay_s=c.rx_delay_s, rx2_freq_hz=c.rx2_freq_hz,
                                     tx_power_dbm=c.tx_power_dbm, **radio))
    if config.serial.enabled:
        from gateway.ingress.serial_bridge import SerialBridgeIngress
        c = config.serial
        out.append(SerialBridgeIngress(port=c.port, baud=c.baud, rx_delay_s=c.rx_delay_s,
                                       rx2_freq_hz=c.rx2_freq_hz, tx_power_dbm=c.tx_power_dbm,
                                       **radio))
    if config.spi.enabled:
        from gateway.ingress.sx127x_spi import Sx127xSpiIngress
        out.append(Sx127xSpiIngress(config.spi, **radio))
    return out


def build_forwarders(config, store, metrics, registry):
    out = []
    if config.mqtt.enabled:
        out.append(MqttForwarder(config.mqtt, gateway_id=config.gateway_id, store=store,
                                 metrics=metrics))
    if config.ngsi_ld.enabled:
        from gateway.forwarders.ngsi_ld import NgsiLdForwarder
        out.append(NgsiLdForwarder(config.ngsi_ld, store=store, metrics=metrics,
                                   registry=registry))
    return out


class Gateway:
    def __init__(self, config, *, ingresses=None, forwarders=None, maintenance_s=5.0):
        """ingresses / forwarders: factories taking what build_ingresses / build_forwarders
        take, to use instead of the ones the config names."""
        self.config = config
        self.maintenance_s = maintenance_s
        self._ingress_factory = ingresses or build_ingresses
        self._forwarder_factory = forwarders or build_forwarders
        self.started = time.time()
        self.tasks = []
        self.http = None
        self._alarm = False

    async def __aenter__(self):
        c = self.config
        self.metrics = metrics_mod.Metrics()
        self.store = Store(c.store.path, synchronous=c.store.synchronous)
        try:
            self.registry = Registry(self.store, c.inventory, required=c.inventory_required)
            self.forwarders = self._forwarder_factory(c, self.store, self.metrics, self.registry)
            self.pipeline = Pipeline(
                gateway_id=c.gateway_id, store=self.store, registry=self.registry,
                metrics=self.metrics, commands=c.commands, queue_max=c.udp.queue_max,
                batch_max=c.store.batch_max, on_commit=self._committed)
            self.dedup = RadioDedup(sink=self.pipeline.submit, window_s=c.dedup_window_s)
            self.ingresses = self._ingress_factory(
                c, self.pipeline.submit, radio_sink=self.dedup.submit, metrics=self.metrics,
                downlink_failed=self.pipeline.downlink_failed)
            self._check_store()
            self.tasks.append(asyncio.create_task(self.pipeline.run(), name="pipeline"))
            for f in self.forwarders:
                self.tasks.append(asyncio.create_task(f.run(), name="forwarder-" + f.name))
            self.tasks.append(asyncio.create_task(self._maintenance(), name="maintenance"))
            for ingress in self.ingresses:
                await ingress.start()
            if c.http.enabled:
                from gateway.http_api import HttpApi
                self.http = HttpApi(self, host=c.http.host, port=c.http.port)
                await self.http.start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        event(log, logging.INFO, "gateway_started", gateway=c.gateway_id,
              devices=len(self.registry.by_id), forwarders=",".join(f.name for f in self.forwarders) or "none")
        return self

    async def __aexit__(self, *exc):
        for ingress in getattr(self, "ingresses", []):
            await ingress.stop()
        if getattr(self, "dedup", None):
            self.dedup.flush_all()
        if self.http:
            await self.http.stop()
        # Whatever is already queued is processed, so that uplinks received are not dropped.
        if getattr(self, "pipeline", None) and not self.pipeline.queue.empty():
            batch = []
            while not self.pipeline.queue.empty():
                batch.append(self.pipeline.queue.get_nowait())
            self.pipeline.process(batch)
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.tasks = []
        self.store.close()
        return False

    async def serve_forever(self):
        await asyncio.gather(*self.tasks)

    def _committed(self):
        for f in self.forwarders:
            f.notify()
        # The quota is checked after every commit (three PRAGMAs), not only by the
        # maintenance task, so that a burst cannot overshoot it by seconds of traffic.
        if not self.pipeline.store_full:
            size = self.store.used_bytes()
            if size >= self.config.store.max_mb * 1e6:
                self._set_full(True, size)

    def confirmed_seq(self):
        """The highest record every forwarder has confirmed (all records when none)."""
        if not self.forwarders:
            return self.store.last_seq()
        return min(f.confirmed_seq for f in self.forwarders)

    def silent_devices(self, now=None):
        now = time.time() if now is None else now
        states = self.store.device_states()
        out = []
        for dev_id, entry in self.registry.by_id.items():
            dev = entry.device
            if not dev.enabled:
                continue
            last = (states.get(dev_id) or {}).get("last_seen")
            since = last if last is not None else self.started
            if now - since > dev.interval_s * self.config.alarms.silent_factor:
                out.append(dev_id)
        return out

    def _check_store(self):
        """The disk quota. Above the alarm level, records every forwarder confirmed are
        deleted early (oldest first, retention or not) and frames kept for deduplication
        are cut to QUOTA_FRAME_RETENTION_S; the alarm stays when that is not enough, that
        is when unconfirmed records fill the store. At the quota, uplinks are refused
        (no receipt: nodes keep them) until the forwarders catch up."""
        quota = self.config.store.max_mb * 1e6
        alarm_at = quota * self.config.store.alarm_pct / 100
        size = self.store.used_bytes()
        if size >= alarm_at:
            with self.store.transaction():
                deleted = self.store.prune_for_quota(self.confirmed_seq(), alarm_at * 0.95,
                                                     time.time() - QUOTA_FRAME_RETENTION_S)
            if deleted:
                event(log, logging.WARNING, "store_pruned", records=deleted,
                      reason="near the disk quota: confirmed records deleted before their "
                      "retention")
            size = self.store.used_bytes()
        self.metrics.store_bytes.set(size)
        alarm = size >= alarm_at
        if alarm and not self._alarm:
            event(log, logging.ERROR, "store_quota_alarm", size_mb=round(size / 1e6, 3),
                  quota_mb=self.config.store.max_mb, alarm_pct=self.config.store.alarm_pct,
                  reason="the store is near its disk quota; check the forwarders")
        elif self._alarm and not alarm:
            event(log, logging.INFO, "store_quota_alarm_cleared", size_mb=round(size / 1e6, 3),
                  quota_mb=self.config.store.max_mb, reason="below the alarm level again")
        self._alarm = alarm
        self.metrics.store_alarm.set(1 if alarm else 0)
        self._set_full(size >= quota, size)

    def _set_full(self, full, size):
        if full != self.pipeline.store_full:
            event(log, logging.ERROR if full else logging.INFO,
                  "store_full" if full else "store_accepting", size_mb=round(size / 1e6, 3),
                  quota_mb=self.config.store.max_mb,
                  reason="uplinks are refused until the forwarders catch up" if full
                  else "below the disk quota again")
        self.pipeline.store_full = full

    def update_metrics(self):
        for f in self.forwarders:
            depth, oldest = self.store.backlog(f.confirmed_seq)
            self.metrics.outbox_depth.labels(f.name).set(depth)
            self.metrics.outbox_age.labels(f.name).set(time.time() - oldest if oldest else 0)
        silent = set(self.silent_devices())
        for dev_id in self.registry.by_id:
            self.metrics.silent.labels(dev_id).set(1 if dev_id in silent else 0)

    def prune(self):
        now = time.time()
        with self.store.transaction():
            self.store.prune_frames(now - FRAME_RETENTION_S)
            self.store.prune_records(self.confirmed_seq(),
                                     now - self.config.store.retention_days * 86400)

    async def _maintenance(self):
        last_prune = 0.0
        while True:
            await asyncio.sleep(self.maintenance_s)
            try:
                self.registry.reload_if_changed()
                self._check_store()
                self.update_metrics()
                if time.time() - last_prune > 600:
                    self.prune()
                    last_prune = time.time()
            except Exception as e:  # keep maintaining; the next round may succeed
                event(log, logging.ERROR, "maintenance_failed", reason=repr(e))
