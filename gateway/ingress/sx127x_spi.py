# LoRa ingress through an SX127x radio on the Raspberry Pi's SPI bus (a single-channel LoRa
# HAT, RFM95W and the like), driven by the firmware's own driver (firmware/net/sx127x.py)
# through gateway/ingress/spi_adapter.py. The radio listens continuously with the configured
# settings; DIO0 edges (read from the GPIO line's file descriptor in the event loop) make it
# poll the chip. A downlink is sent at its time in the node's receive window, with inverted
# I/Q, and the radio then listens again: it cannot hear while it sends.
import asyncio
import bisect
import itertools
import logging
import time


from gateway import ingress
from gateway.ingress import rx_windows, spi_adapter
from gateway.ingress.duty_cycle import TxBudget
from gateway.logs import event
from gateway.uplink import Uplink

log = logging.getLogger("gateway.ingress.spi")

# Also poll without an edge now and then: an edge lost while the radio was reconfigured
# would otherwise leave a packet in the chip for ever.
_POLL_S = 0.05
# A transmission not done by its airtime and this margin is given up (the driver's
# blocking send uses a timeout of the same kind).
_TX_MARGIN_S = 0.5


def full_tmst(tmst32, now_us):
    """The radio's microsecond time (not wrapped) of a 32-bit tmst at most 71 min old or
    ahead: the schedule is computed in 32-bit tmst units, as for the other ingresses."""
    return now_us + (((tmst32 - now_us) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


class _Reply(rx_windows.WindowReply):
    __slots__ = ()

    def _booking(self, tmst):
        ing = self.ingress
        return ing.budget, full_tmst(tmst, ing.clock.ticks_us()) / 1e6

    def _transmit(self, data, tmst, freq_hz):
        self.ingress.queue_downlink(data, tmst, freq_hz)


class Sx127xSpiIngress:
    name = "spi"

    def __init__(self, config, *, sink, metrics, downlink_failed=None, driver=None,
                 radio=None, dio0=None, poll_s=_POLL_S):
        """config: gateway.config.SpiIngressConfig. driver / radio / dio0: the driver
        module, an SX127x made with it and its DIO0 pin, when the radio is not the one
        spidev and gpiod give (otherwise made when started). poll_s: how often the radio
        is polled without a DIO0 edge."""
        self.config = config
        self.sink = sink
        self.metrics = metrics
        self.downlink_failed = downlink_failed or (lambda data, reason: None)
        self.rx_delay_us = round(config.rx_delay_s * 1e6)
        self.rx2_freq_hz = config.rx2_freq_hz
        self.receiver = "spi:%d.%d" % (config.bus, config.device)
        self.driver = driver
        self.radio = radio
        self.dio0 = dio0
        self.poll_s = poll_s
        self.clock = spi_adapter.MicroTime()
        self.budget = TxBudget()  # this radio's transmitter, on the radio's clock
        self.downlinks = []  # (start us, n, frame, channel), soonest first
        self._queued = itertools.count()  # n: equal starts keep their order
        self.sending = None  # (frame, deadline) of the transmission in progress
        self.task = None
        self._wake = None
        self._spi = None
        self._pins = []

    async def start(self):
        c = self.config
        self.driver = self.driver or spi_adapter.load_driver(chip=c.chip)
        if self.radio is None:
            self._spi = spi_adapter.open_spi(c.bus, c.device, c.speed_hz)

            def pin(line):
                return spi_adapter.GpiodPin(c.gpio_chip, line)
            reset = pin(c.reset_pin)
            # dio0: the chip's interrupt line, DIO0 (SX127x) or DIO1 (SX126x)
            self.dio0 = pin(c.dio1_pin if c.chip == "sx126x" else c.dio0_pin)
            self._pins = [reset, self.dio0]
            # Some HATs wire NSS to a plain GPIO (the kernel's CE line then toggles unused).
            cs = spi_adapter.KernelChipSelect()
            if c.cs_pin >= 0:
                cs = pin(c.cs_pin)
                self._pins.append(cs)
            bus = spi_adapter.SpiBus(self._spi)
            modem = dict(freq_hz=c.frequency_hz, sf=c.sf, bw_hz=round(c.bw_khz * 1000),
                         cr=c.cr + 4, power_dbm=c.tx_power_dbm, preamble=c.preamble)
            if c.chip == "sx126x":
                busy = pin(c.busy_pin)
                self._pins.append(busy)
                self.radio = self.driver.SX126x(bus, cs, reset, busy, self.dio0,
                                                tcxo_mv=c.tcxo_mv,
                                                dio2_rf_switch=c.dio2_rf_switch, **modem)
            else:
                self.radio = self.driver.SX127x(bus, cs, reset, self.dio0, **modem)
        self._wake = asyncio.Event()
        if self.dio0 is not None and hasattr(self.dio0, "fd"):
            asyncio.get_running_loop().add_reader(self.dio0.fd, self._edge)
        self.radio.start_recv()
        self.task = asyncio.create_task(self._run(), name="ingress-spi")
        event(log, logging.INFO, "ingress_started", ingress=self.name, receiver=self.receiver,
              frequency=c.frequency_hz, sf=c.sf, bw_khz=c.bw_khz)

    async def stop(self):
        if self.task:
            await ingress.cancel(self.task)
            self.task = None
        if self.dio0 is not None and hasattr(self.dio0, "fd"):
            asyncio.get_running_loop().remove_reader(self.dio0.fd)
        if self.radio is not None:
            try:
                self.radio.sleep()
            except OSError as e:
                event(log, logging.WARNING, "radio_error", device="unknown", reason=str(e))
        for pin in self._pins:
            pin.close()
        if self._spi is not None:
            self._spi.close()

    def _edge(self):
        self.dio0.dispatch()
        self._wake.set()

    async def _run(self):
        while True:
            timeout = self.poll_s
            if self.downlinks and self.sending is None:
                timeout = min(timeout, max(0.0, (self.downlinks[0][0] - self.clock.ticks_us())
                                           / 1e6))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                self.step()
            except Exception as e:  # a bus fault (or a bug) costs this round, not the ingress
                log.exception("radio_error", extra={"fields": {"device": "unknown",
                                                               "reason": repr(e)}})
                if self.sending:
                    self._downlink_error(self.sending[0], "radio_error")
                    self.sending = None
                try:
                    self._listen()
                except OSError as e2:
                    event(log, logging.ERROR, "radio_error", device="unknown", reason=str(e2))
                    await asyncio.sleep(1.0)

    def step(self):
        """Poll the radio once and start a downlink whose time has come."""
        d = self.driver
        what = self.radio.poll()
        if what == d.RX_DONE:
            self._received(self.radio.packet)
        elif what == d.RX_CRC_ERROR:
            self.reject("crc_bad", "packet received with a bad CRC")
        elif what == d.TX_DONE and self.sending:
            self.sending = None
            self._listen()
        if self.sending and time.monotonic() > self.sending[1]:
            data = self.sending[0]
            self.sending = None
            self._downlink_error(data, "tx_timeout")
            self._listen()
        now = self.clock.ticks_us()
        while self.sending is None and self.downlinks and self.downlinks[0][0] <= now:
            start, _, data, freq_hz = self.downlinks.pop(0)
            if now - start > 20000:  # 20 ms late: the node's window has closed
                self._downlink_error(data, "too_late")
                continue
            self.radio.configure(freq_hz=freq_hz, invert_iq=True)
            self.radio.start_send(data)
            airtime_s = self.radio.time_on_air_ms(len(data)) / 1000
            self.sending = (data, time.monotonic() + airtime_s + _TX_MARGIN_S)

    def _listen(self):
        self.radio.configure(freq_hz=self.config.frequency_hz, invert_iq=False)
        self.radio.start_recv()

    def _received(self, packet):
        payload, rssi, snr_x4, ticks = packet
        c = self.config
        radio = {"rssi": rssi, "snr": snr_x4 / 4, "frequency": c.frequency_hz, "sf": c.sf,
                 "bw": c.bw_khz, "cr": "4/%d" % (c.cr + 4), "tmst": ticks & 0xFFFFFFFF,
                 "receiver": self.receiver}
        self.sink(Uplink(raw=payload, source=self.name, received=time.time(), radio=radio,
                         reply=_Reply(self, radio)))

    def queue_downlink(self, data, tmst32, freq_hz):
        start = full_tmst(tmst32, self.clock.ticks_us())
        bisect.insort(self.downlinks, (start, next(self._queued), data, freq_hz))
        if self._wake is not None:
            self._wake.set()

    def _downlink_error(self, data, reason):
        rx_windows.downlink_error(self, data, reason, receiver=self.receiver)

    def reject(self, reason, message):
        self.metrics.ingress_rejected.labels(self.name, reason).inc()
        event(log, logging.WARNING, "packet_rejected", device="unknown", reason=reason,
              detail=message, ingress=self.name, receiver=self.receiver)
