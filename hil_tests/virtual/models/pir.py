"""A PIR motion detector of the HC-SR501 class on a GPIO input, from its module manual.

OUT goes high (3.3 V) when a warm body moves in the field of view and stays high for the
delay time set by the "Tx" trimmer (about 0.3 s to 200 s; here `hold_s`). With the trigger
jumper on H (repeatable, the usual setting) every detection during the delay restarts it;
on L (single) the output falls after the delay whatever happens. After OUT falls, the
module is blind for the lock time, about 2.5 s.

Scenario: `motions`, the virtual times (µs) at which someone moves in the field. Faults:
"dead" (OUT stays low), "stuck_value" (OUT stays high)."""
import bisect

from hil_tests.virtual.models import Model

LOCK_US = 2500000


class PIR(Model):
    def __init__(self, pin=27, motions=(), hold_s=3.0, repeatable=True):
        self.pin = pin
        self.hold_us = int(hold_s * 1e6)
        self.repeatable = repeatable
        self.reads = 0
        self.motions = motions

    @property
    def motions(self):
        return self._motions

    @motions.setter
    def motions(self, times):
        self._motions = sorted(times)
        self._pulses()

    def _pulses(self):
        """The (rise, fall) intervals of OUT for the scenario's motions."""
        pulses = []
        for t in self._motions:
            if pulses:
                fall = pulses[-1][1]
                if t < fall:  # during the delay: H restarts it, L ignores the motion
                    if self.repeatable:
                        pulses[-1][1] = t + self.hold_us
                    continue
                if t < fall + LOCK_US:
                    continue  # blind after OUT falls
            pulses.append([t, t + self.hold_us])
        self._rises = [p[0] for p in pulses]
        self._falls = [p[1] for p in pulses]
        return pulses

    def rise_after(self, vt):
        """The first rise of OUT at or after vt (for latency measurements), or None."""
        i = bisect.bisect_left(self._rises, vt)
        return self._rises[i] if i < len(self._rises) else None

    def bus_keys(self):
        return [("pin", self.pin)]

    def read(self, vt):
        self.reads += 1
        if self.fault == "dead":
            return 0
        if self.fault == "stuck_value":
            return 1
        i = bisect.bisect_right(self._rises, vt) - 1
        return 1 if i >= 0 and vt < self._falls[i] else 0

    def write(self, value, vt):
        pass  # an input: the firmware's writes go nowhere
