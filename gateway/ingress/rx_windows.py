# When a LoRa node listens for downlinks (firmware/README.md, "Receive windows"): in RX1,
# rx_delay after its uplink ended, on the uplink's channel; if nothing came there, in RX2, a
# second later, on the RX2 channel (869.525 MHz by default: the 10 % sub-band); when the
# receipt announces commands, again rx_delay after the end of each downlink, on the channel
# of the receipt. Receivers count time in 32-bit microseconds that wrap (the packet
# forwarder's and the serial bridge's tmst), so the schedule is in those units.
#
# Why RX2: the gateway answers every uplink with a receipt, and a receipt costs about as
# much airtime as the uplink. In the 1 % sub-band of the uplink channels one transmitter may
# answer some 30 nodes at a 10-minute interval; the RX2 channel's 10 % serves ten times as
# many. RX1 is used while its sub-band's budget lasts (the node sleeps sooner).
import logging

from gateway.logs import event
from protocol import airtime

log = logging.getLogger("gateway.ingress")

RX2_FREQ_HZ = 869525000
RX2_LATER_US = 1000000  # RX2 opens a second after RX1 (as LoRaWAN's RECEIVE_DELAY2)
_MASK = 0xFFFFFFFF


def downlink_error(ingress, data, reason, **where):
    """A downlink of a radio ingress did not go out: counted, logged with the device's
    address and where it failed, and reported (a command in it is then tried again)."""
    ingress.metrics.downlink_errors.labels(ingress.name, reason).inc()
    event(logging.getLogger("gateway.ingress." + ingress.name), logging.WARNING,
          "downlink_failed", device="addr:%s" % data[1:4].hex(), reason=reason, **where)
    ingress.downlink_failed(data, reason)


def cr_index(codr):
    """"4/5" -> 1 ... "4/8" -> 4."""
    return int(codr[2]) - 4


class WindowReply:
    """An uplink's `reply`: sends the downlinks of its receive windows back through the
    receiver that heard it. The first goes in RX1 if the uplink sub-band's duty-cycle budget
    allows it, else in RX2 if that one's does; the rest follow it on its channel. Once one is
    refused the node has stopped listening, so the rest are refused too.

    The ingress gives `rx_delay_us` and `rx2_freq_hz` (0: no RX2); a subclass gives
    `_booking(tmst)` -> (the receiver's TxBudget, tmst in that budget's time) and
    `_transmit(data, tmst, freq_hz)`."""

    __slots__ = ("ingress", "radio", "refused", "freq_hz", "next_tmst")

    def __init__(self, ingress, radio):
        self.ingress = ingress
        self.radio = radio
        self.refused = False
        self.freq_hz = None    # the channel of this window's downlinks, once chosen
        self.next_tmst = None  # when the node listens for the next one

    def __call__(self, data):
        try:
            self._send(data)
        except Exception as e:  # called by the pipeline: a bug here must not stop it
            log.exception("downlink_error", extra={"fields": {"device": "unknown",
                                                              "reason": repr(e)}})
            self._failed(data, "internal_error")

    def windows(self):
        """(channel, start tmst) of the windows this downlink may go in, in order."""
        if self.freq_hz is not None:
            return [(self.freq_hz, self.next_tmst)]
        ing, r = self.ingress, self.radio
        rx1 = (r["tmst"] + ing.rx_delay_us) & _MASK
        out = [(r["frequency"], rx1)]
        if ing.rx2_freq_hz and ing.rx2_freq_hz != r["frequency"]:
            out.append((ing.rx2_freq_hz, (rx1 + RX2_LATER_US) & _MASK))
        return out

    def airtime_s(self, data):
        r = self.radio
        return airtime.time_on_air_ms(len(data), r["sf"], r["bw"], cr_index(r["cr"])) / 1000

    def _send(self, data):
        ing = self.ingress
        if not self.refused:
            toa = self.airtime_s(data)
            for freq, tmst in self.windows():
                budget, at = self._booking(tmst)
                if budget.take(freq, toa, at):
                    self.freq_hz = freq
                    self.next_tmst = (tmst + round(toa * 1e6) + ing.rx_delay_us) & _MASK
                    return self._transmit(data, tmst, freq)
        self.refused = True
        self._failed(data, "duty_cycle")

    def _booking(self, tmst):
        raise NotImplementedError

    def _transmit(self, data, tmst, freq_hz):
        raise NotImplementedError

    def _failed(self, data, reason):
        self.ingress._downlink_error(data, reason)
