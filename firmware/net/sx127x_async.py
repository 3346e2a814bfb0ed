# asyncio adapter over the SX127x driver's non-blocking core (net/sx127x.py), for firmware
# that runs an event loop: while the radio sends or listens, the other tasks run. The DIO0
# handler sets a ThreadSafeFlag (safe from an interrupt); each wait also polls the chip every
# step, so an edge lost while the radio was reconfigured costs a step, never the packet.
# The node's cycle does not use it (the blocking wrappers cost less heap).
import asyncio


class AsyncSX127x:
    def __init__(self, radio):
        self.radio = radio
        self._edge = asyncio.ThreadSafeFlag()
        radio.on_irq = self._edge.set

    async def _run(self, steps, first_ms, step_ms):
        ms = first_ms
        try:
            while True:
                next(steps)
                try:  # until the next DIO0 edge, or ms at most
                    await asyncio.wait_for_ms(self._edge.wait(), ms)
                except asyncio.TimeoutError:
                    pass
                ms = step_ms
        except StopIteration as e:
            return e.value

    async def send(self, payload, timeout_ms, airtime_ms=0):
        """Transmit and wait for the end (see SX127x.sending()); returns when it ended."""
        return await self._run(self.radio.sending(payload, timeout_ms),
                               max(1, int(airtime_ms) - 2), 1)

    async def recv(self, timeout_ms, header_ms=None, step_ms=2):
        """One packet or None (see SX127x.receiving())."""
        return await self._run(self.radio.receiving(timeout_ms, header_ms), step_ms, step_ms)
