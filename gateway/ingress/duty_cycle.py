# The gateway's own transmitter is bound by the EU868 duty cycle as much as a node's:
# ETSI EN 300 220-2 measures it over one hour, so a receiver may send at most dc x 3600 s
# of airtime in any hour on a sub-band (1% of 868.0-868.6 MHz: 36 s). Each radio ingress
# keeps one budget per receiver and asks it before every downlink; a downlink that would
# exceed it is not sent (counted as a downlink error "duty_cycle"; a command in it waits for
# the next uplink). Sub-bands and their limits come from protocol/airtime.py.
import collections
import time

from protocol import airtime

WINDOW_S = 3600.0


class TxBudget:
    def __init__(self, *, clock=time.monotonic, window_s=WINDOW_S):
        self.clock = clock
        self.window_s = window_s
        self._sent = {}  # sub-band name -> deque of (time, airtime s), oldest first
        self._used = {}  # sub-band name -> airtime s in the window

    def take(self, freq_hz, airtime_s, at=None):
        """Book a transmission of airtime_s on freq_hz starting at `at` (clock time; now by
        default) if the sub-band's budget allows it; whether it was booked. A frequency
        outside every sub-band open to general use is never allowed."""
        try:
            name, _, _, dc = airtime.eu868_sub_band(freq_hz)
        except ValueError:
            return False
        at = self.clock() if at is None else at
        sent = self._sent.setdefault(name, collections.deque())
        used = self._used.get(name, 0.0)
        while sent and sent[0][0] <= at - self.window_s:
            used -= sent.popleft()[1]
        if used + airtime_s > dc * self.window_s + 1e-9:
            self._used[name] = used
            return False
        sent.append((at, airtime_s))
        self._used[name] = used + airtime_s
        return True

    def used_s(self, freq_hz):
        """Airtime booked in the current window on freq_hz's sub-band."""
        return self._used.get(airtime.eu868_sub_band(freq_hz)[0], 0.0)


class Unwrapped:
    """A receiver's 32-bit microsecond counter (tmst) made continuous, in seconds: it wraps
    every 71.6 minutes, less than the duty-cycle window. Budgets are kept in the receiver's
    own time, so a simulation that runs faster than real time is accounted in its time."""

    def __init__(self):
        self.last = None
        self.base = 0

    def seconds(self, tmst):
        if self.last is None:
            self.last = tmst
        delta = (tmst - self.last) & 0xFFFFFFFF
        if delta < 0x80000000:  # at or after the newest value seen (maybe past a wrap)
            if tmst < self.last:
                self.base += 1 << 32
            self.last = tmst
            return (self.base + tmst) / 1e6
        return (self.base + self.last - ((self.last - tmst) & 0xFFFFFFFF)) / 1e6
