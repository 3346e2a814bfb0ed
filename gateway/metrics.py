# Prometheus metrics, one registry per gateway instance (no process-wide singletons, so two
# gateways can run in one process, as the tests do).
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.frames = Counter("cityedge_frames", "Frames received, by ingress", ["ingress"],
                              registry=r)
        self.accepted = Counter("cityedge_frames_accepted", "Frames accepted and stored",
                                ["ingress"], registry=r)
        self.duplicates = Counter("cityedge_frames_duplicate",
                                  "Frames already stored, heard again (no new record)",
                                  ["ingress"], registry=r)
        self.rejected = Counter("cityedge_frames_rejected", "Frames rejected, by reason",
                                ["reason"], registry=r)
        # What a radio ingress refuses before the pipeline sees a frame (a malformed
        # datagram or line, an unknown packet forwarder, a bad radio CRC), and downlinks a
        # receiver could not send.
        self.ingress_rejected = Counter(
            "cityedge_ingress_rejected", "Datagrams, lines or packets an ingress refused, "
            "by ingress and reason", ["ingress", "reason"], registry=r)
        self.downlink_errors = Counter(
            "cityedge_downlink_errors", "Downlinks a receiver could not send, by ingress and "
            "reason", ["ingress", "reason"], registry=r)
        self.records = Counter("cityedge_records", "Output records stored, by kind", ["kind"],
                               registry=r)
        self.downlinks = Counter("cityedge_downlinks", "Downlink frames sent, by kind",
                                 ["kind"], registry=r)
        self.forwarded = Counter("cityedge_forwarded", "Records confirmed by the next hop",
                                 ["forwarder"], registry=r)
        self.forward_errors = Counter("cityedge_forward_errors",
                                      "Forwarding attempts that failed, by forwarder",
                                      ["forwarder"], registry=r)
        self.forward_latency = Histogram(
            "cityedge_forward_latency_seconds", "From receipt by the gateway to confirmation",
            ["forwarder"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
        self.outbox_depth = Gauge("cityedge_outbox_depth", "Records not yet confirmed",
                                  ["forwarder"], registry=r)
        self.outbox_age = Gauge("cityedge_outbox_age_seconds",
                                "Age of the oldest unconfirmed record", ["forwarder"],
                                registry=r)
        self.store_bytes = Gauge("cityedge_store_bytes", "Size of the SQLite store", registry=r)
        self.store_alarm = Gauge("cityedge_store_quota_alarm",
                                 "1 when the store is above its alarm level", registry=r)
        self.last_seen = Gauge("cityedge_device_last_seen_timestamp_seconds",
                               "Time of the device's last accepted uplink", ["device"],
                               registry=r)
        self.silent = Gauge("cityedge_device_silent",
                            "1 when no uplink came within the device's expected interval",
                            ["device"], registry=r)

    def render(self):
        return generate_latest(self.registry)
