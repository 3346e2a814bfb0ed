# When a LoRa node listens for downlinks (firmware/README.md, "Receive windows"): once,
# rx_delay after its uplink ended; when the receipt announces commands, again rx_delay after
# the end of each downlink. Receivers count time in 32-bit microseconds that wrap (the
# packet forwarder's and the serial bridge's tmst), so the schedule is in those units.
import logging

from protocol import airtime

log = logging.getLogger("gateway.ingress")


def schedule_us(tmst, sizes, *, sf, bw_khz, cr, rx_delay_us):
    """The start time of each downlink of one receive window (mod 2^32): the uplink ended
    at tmst; sizes are the downlink frames' lengths in the order they are sent; cr is
    1..4 for 4/5..4/8."""
    out, start = [], tmst + rx_delay_us
    for size in sizes:
        out.append(start & 0xFFFFFFFF)
        start += round(airtime.time_on_air_ms(size, sf, bw_khz, cr) * 1000) + rx_delay_us
    return out


def cr_index(codr):
    """"4/5" -> 1 ... "4/8" -> 4."""
    return int(codr[2]) - 4


class WindowReply:
    """An uplink's `reply`: sends the downlinks of its receive window back through the
    receiver that heard it, each at its place in the chain. Once one is refused (the duty
    cycle) the node has stopped listening, so the rest are refused too. A subclass sends."""

    __slots__ = ("ingress", "radio", "sizes", "refused")

    def __init__(self, ingress, radio):
        self.ingress = ingress
        self.radio = radio
        self.sizes = []
        self.refused = False

    def __call__(self, data):
        try:
            self._send(data)
        except Exception as e:  # called by the pipeline: a bug here must not stop it
            log.exception("downlink_error", extra={"fields": {"device": "unknown",
                                                              "reason": repr(e)}})
            self._failed(data, "internal_error")

    def _send(self, data):
        raise NotImplementedError

    def _failed(self, data, reason):
        self.ingress._downlink_error(data, reason)

    def next_slot(self, data, rx_delay_us):
        """(tmst, airtime in s) of this downlink, the next in the window's chain."""
        r = self.radio
        self.sizes.append(len(data))
        cr = cr_index(r["cr"])
        tmst = schedule_us(r["tmst"], self.sizes, sf=r["sf"], bw_khz=r["bw"], cr=cr,
                           rx_delay_us=rx_delay_us)[-1]
        return tmst, airtime.time_on_air_ms(len(data), r["sf"], r["bw"], cr) / 1000

    def refuse(self, data):
        self.refused = True
        self._failed(data, "duty_cycle")
