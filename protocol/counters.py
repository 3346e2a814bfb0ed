# Frame counters at the receiver: the full 32-bit counter from the 16 bits on air, and the
# replay window that accepts each counter once (PROTOCOL.md section 6).
from protocol.errors import ReplayError

MAX_FCNT = 0xFFFFFFFF

# A frame is taken to be at most REPLAY_WINDOW - 1 counters older than the newest accepted,
# or at most MAX_GAP counters newer.
REPLAY_WINDOW = 64
MAX_GAP = 0x10000 - REPLAY_WINDOW


def full_counter(newest, low):
    """The 32-bit counter for the 16 low bits on air, given the newest counter accepted
    from this device (None when none yet). The result lies in
    (newest - REPLAY_WINDOW, newest + MAX_GAP]."""
    if newest is None:
        return low
    base = newest - REPLAY_WINDOW + 1
    candidate = (base & ~0xFFFF) | low
    if candidate < base:
        candidate += 0x10000
    if candidate > MAX_FCNT:
        raise ReplayError("frame: counter space exhausted (newest %d); the device needs a new key"
                          % newest)
    return candidate


class ReplayWindow:
    """Which counters of one device and direction have been accepted: the newest, and a
    bitmap of the REPLAY_WINDOW counters up to it. Frames may arrive out of order within
    the window (several receivers, two transports); each counter is accepted once."""

    __slots__ = ("newest", "seen")

    def __init__(self, newest=None, seen=0):
        self.newest = newest
        self.seen = seen  # bit i set: counter newest - i was accepted

    def check(self, fcnt):
        """Raise ReplayError if fcnt must not be accepted; change nothing."""
        if self.newest is None or fcnt > self.newest:
            return
        age = self.newest - fcnt
        if age >= REPLAY_WINDOW:
            raise ReplayError("frame: counter %d is older than the replay window (newest %d)"
                              % (fcnt, self.newest))
        if self.seen >> age & 1:
            raise ReplayError("frame: counter %d was already accepted (replay)" % fcnt)

    def accept(self, fcnt):
        self.check(fcnt)
        if self.newest is None:
            self.newest, self.seen = fcnt, 1
        elif fcnt > self.newest:
            shift = fcnt - self.newest
            if shift < REPLAY_WINDOW:
                self.seen = ((self.seen << shift) | 1) & ((1 << REPLAY_WINDOW) - 1)
            else:
                self.seen = 1
            self.newest = fcnt
        else:
            self.seen |= 1 << (self.newest - fcnt)
