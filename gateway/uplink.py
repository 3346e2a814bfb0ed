# The one record every ingress adapter produces and the pipeline consumes.
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True, slots=True)
class Uplink:
    raw: bytes
    source: str  # the ingress that heard it: "udp" (later "semtech", "serial", "spi")
    received: float  # Unix time when the ingress got it
    radio: dict = field(default_factory=dict, compare=False, hash=False)
    # rssi, snr, frequency, sf, receiver: what the ingress knows; {"peer": "ip:port"} for UDP
    reply: Callable[[bytes], None] | None = field(default=None, compare=False, hash=False)
    # sends a downlink frame back the way the uplink came (None: no downlink path)

    @property
    def receiver(self):
        return self.radio.get("receiver") or self.source
