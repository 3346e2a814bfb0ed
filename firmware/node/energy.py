# The energy account of a cycle: time in each state times the configured current gives the
# charge the cycle took, reported in status frames and used by tools/battery.
import time


class EnergyAccount:
    def __init__(self, currents_ma):
        self._currents = currents_ma
        self.ms = {}

    def add(self, state, ms):
        self.ms[state] = self.ms.get(state, 0) + ms

    def timed(self, state, start_ticks):
        """Add the time since start_ticks (time.ticks_ms) to a state."""
        self.add(state, time.ticks_diff(time.ticks_ms(), start_ticks))

    def charge_uah(self, awake_ms, sleep_ms):
        """Charge of the cycle in µAh: the listed states at their own current, the rest of
        the awake time at the CPU's, and the sleep."""
        c = self._currents
        other = awake_ms - sum(self.ms.values())
        total = max(other, 0) * c.get("awake", 40.0) + sleep_ms * c.get("sleep", 0.01)
        for state, ms in self.ms.items():
            total += ms * c.get(state, c.get("awake", 40.0))
        return total / 3600.0
