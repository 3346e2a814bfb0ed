# The uplink frame counter, never reused with a key (PROTOCOL.md section 6): the next counter
# lives in RTC memory, and a reservation in flash bounds every counter ever used. Before a
# counter at or past the reservation is used, a new reservation RESERVE ahead is written
# (new file, then rename); after power loss the node starts at the reservation.
import os

RESERVE = 256
MAX_FCNT = 0xFFFFFFFF


class CounterExhausted(Exception):
    pass


class FrameCounter:
    def __init__(self, state, path="fcnt.res"):
        self._path = path
        self._state = state
        self._reserved = self._read()
        if "fcnt" not in state:  # cold boot: everything used so far lies below the reservation
            state["fcnt"] = self._reserved

    def _read(self):
        try:
            with open(self._path) as f:
                return int(f.read())
        except (OSError, ValueError):
            # No reservation (a new board) or an unreadable one. An unreadable one can only
            # be a torn first write: rename is atomic, so a written file is whole.
            return 0

    def _reserve(self, upto):
        with open(self._path + ".new", "w") as f:
            f.write(str(upto))
        os.rename(self._path + ".new", self._path)
        self._reserved = upto

    def next(self):
        """The counter for the next frame; it is never handed out twice."""
        fcnt = self._state["fcnt"]
        if fcnt > MAX_FCNT:
            raise CounterExhausted("frame counter exhausted: the device needs a new key")
        if fcnt >= self._reserved:
            self._reserve(min(fcnt + RESERVE, MAX_FCNT + 1))
        self._state["fcnt"] = fcnt + 1
        return fcnt
