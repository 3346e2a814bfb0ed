# What the LoRa transceiver drivers (net/sx127x.py, net/sx126x.py) share: their events and
# errors, and the waits over their non-blocking core. A driver provides start_send(),
# start_recv(), poll(), header_seen(), standby(), `packet`, `done_us`, `tag` (its name in
# messages) and the modem settings (sf, bw_hz, cr, preamble).
from micropython import const
import time

# poll() events
TX_DONE = const(1)
RX_DONE = const(2)
RX_CRC_ERROR = const(3)


BANDWIDTHS_HZ = (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)


class RadioError(OSError):
    pass


class RadioTimeout(RadioError):
    pass


class Radio:
    tag = "radio"
    sf_min = 6  # the lowest spreading factor the chip has

    def _on_irq(self, pin):
        # The chip's interrupt line (DIO0, DIO1) rose: only note when, and flag it for poll().
        self._irq_us = time.ticks_us()
        self._flag = True
        if self.on_irq is not None:
            self.on_irq()

    def _modem(self, sf, bw_hz, cr, preamble):
        """Check and keep the modem settings given (None: unchanged); the chip's own
        configure() then writes them."""
        if sf is not None:
            if not self.sf_min <= sf <= 12:
                raise ValueError("%s: spreading factor %r is not %d..12" % (self.tag, sf,
                                                                           self.sf_min))
            self.sf = sf
        if bw_hz is not None:
            if bw_hz not in BANDWIDTHS_HZ:
                raise ValueError("%s: bandwidth %r Hz is not one of %s"
                                 % (self.tag, bw_hz, BANDWIDTHS_HZ))
            self.bw_hz = bw_hz
        if cr is not None:
            if not 5 <= cr <= 8:
                raise ValueError("%s: coding rate 4/%r is not 4/5..4/8" % (self.tag, cr))
            self.cr = cr
        if preamble is not None:
            if not 6 <= preamble <= 65535:
                raise ValueError("%s: preamble %r is not 6..65535 symbols"
                                 % (self.tag, preamble))
            self.preamble = preamble

    def symbol_ms(self):
        """One symbol's duration at the nominal bandwidth, 2^SF / BW."""
        return (1 << self.sf) * 1000 / self.bw_hz

    def time_on_air_ms(self, length):
        """Airtime of a packet of `length` bytes with the current settings, for hosts that
        reuse a driver (the gateway's SPI HAT). A node's link has its own small copy of
        the formula (net/eu868.py) and never loads protocol/airtime.py through here."""
        from protocol import airtime
        return airtime.time_on_air_ms(length, self.sf, self.bw_hz / 1000, self.cr - 4,
                                      self.preamble)

    def sending(self, payload, timeout_ms):
        """A transmission as a generator, for any way of waiting (the blocking send() here,
        net/sx127x_async.py): it yields while the packet is going out and returns when it
        ended (time.ticks_us). payload None: what load() put in the chip's buffer."""
        start = time.ticks_ms()
        self.start_send(payload)
        while self.poll() != TX_DONE:
            if time.ticks_diff(time.ticks_ms(), start) > timeout_ms:
                self.standby()
                raise RadioTimeout("%s: no TxDone within %d ms" % (self.tag, timeout_ms))
            yield
        return self.done_us

    def receiving(self, timeout_ms, header_ms=None):
        """One reception as a generator: it yields while nothing has come and returns the
        packet (payload, rssi, snr_x4, ticks_us), or None when nothing came or the packet
        failed its CRC. With header_ms, it gives up then unless a header has arrived;
        timeout_ms bounds it in any case. Leaves the radio in standby."""
        start = time.ticks_ms()
        self.start_recv()
        try:
            while True:
                event = self.poll()
                if event == RX_DONE:
                    return self.packet
                if event == RX_CRC_ERROR:
                    return None
                waited = time.ticks_diff(time.ticks_ms(), start)
                if waited > timeout_ms:
                    return None
                if header_ms is not None and waited > header_ms:
                    if not self.header_seen():
                        return None
                    header_ms = None
                yield
        finally:
            self.standby()

    def send(self, payload, timeout_ms, airtime_ms=0):
        """Transmit and wait for the end; returns when it ended (time.ticks_us). With the
        packet's airtime given, the wait sleeps through most of it instead of polling."""
        nap = int(airtime_ms) - 2 if airtime_ms > 2 else 1
        return _wait(self.sending(payload, timeout_ms), nap, 1)

    def recv(self, timeout_ms, header_ms=None, step_ms=2, tick=None):
        """Wait for one packet (see receiving()), polling every step_ms; tick() is called
        at every step (a watchdog's feed: a window at SF12 may outlast it)."""
        return _wait(self.receiving(timeout_ms, header_ms), step_ms, step_ms, tick)


def _wait(steps, first_ms, step_ms, tick=None):
    """Run a sending()/receiving() generator to its end, sleeping between its steps."""
    try:
        next(steps)
        time.sleep_ms(first_ms)
        while True:
            next(steps)
            if tick is not None:
                tick()
            time.sleep_ms(step_ms)
    except StopIteration as e:
        return e.value
