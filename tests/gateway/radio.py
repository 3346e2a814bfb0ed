# For the radio ingress tests: an uplink sealed as a LoRa node seals it, and a
# downlink opened as the node opens it.
from protocol import frame, schema

from tests.gateway.node import FILL


def uplink(dev, fcnt, kind=schema.FILL, body=None):
    body = schema.encode(kind, FILL if body is None else body)
    return frame.seal(frame.Keys(dev.key), kind, dev.addr, fcnt, body)


def open_down(dev, data):
    """(kind, message) of a downlink for dev (small counters: no epoch to guess)."""
    hdr = frame.parse_header(data)
    assert hdr.direction == frame.DOWN and hdr.addr == dev.addr
    return hdr.kind, schema.decode(hdr.kind, frame.unseal(frame.Keys(dev.key), data,
                                                          hdr.fcnt_low))
