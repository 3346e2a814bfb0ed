# LoRa ingress through an ESP32 running the firmware's serial bridge (bridge.py) on a USB
# serial port: UP lines become Uplinks, downlinks go back as DN lines at the bridge's
# microsecond clock, one at a time (the bridge holds one), each answered OK or ERR. The
# line protocol is in firmware/README.md; gateway/ingress/bridge_lines.py reads and writes
# it. A line that is not right is counted and logged; a lost port is reopened.
import asyncio
import collections
import logging
import time


from gateway import ingress
from gateway.ingress import bridge_lines as bl
from gateway.ingress import rx_windows
from gateway.ingress.duty_cycle import TxBudget, Unwrapped
from gateway.logs import event
from gateway.uplink import Uplink

log = logging.getLogger("gateway.ingress.serial")

# A DN the bridge has not answered by then is given up (it refuses DN more than 10 s ahead).
_ANSWER_WAIT_S = 15.0


class _Reply(rx_windows.WindowReply):
    """Queues the downlinks of one uplink's receive window on the bridge that heard it."""

    __slots__ = ()

    def _booking(self, tmst):
        return self.ingress.budget, self.ingress.clock.seconds(tmst)

    def _transmit(self, data, tmst, freq_hz):
        r, ing = self.radio, self.ingress
        ing.queue_downlink(data, bl.dn(data, tmst=tmst, frequency=freq_hz, sf=r["sf"],
                                       bw_khz=r["bw"], cr=r["cr"], power_dbm=ing.tx_power_dbm))


class SerialBridgeIngress:
    name = "serial"

    def __init__(self, *, port, baud=115200, sink, metrics, rx_delay_s=1.0,
                 rx2_freq_hz=rx_windows.RX2_FREQ_HZ, tx_power_dbm=14, downlink_failed=None,
                 reopen_s=2.0):
        self.port = port
        self.baud = baud
        self.sink = sink
        self.metrics = metrics
        self.rx_delay_us = round(rx_delay_s * 1e6)
        self.rx2_freq_hz = rx2_freq_hz
        self.tx_power_dbm = tx_power_dbm
        self.downlink_failed = downlink_failed or (lambda data, reason: None)
        self.reopen_s = reopen_s
        self.receiver = "serial:" + port
        self.budget = TxBudget()  # the bridge's transmitter, in its own clock (tmst)
        self.clock = Unwrapped()
        self.writer = None
        self.task = None
        self.chip = None  # from the bridge's READY line
        self.queue = collections.deque()  # (frame, DN line) waiting for the bridge
        self.inflight = None  # (frame, DN line, time written): the DN the bridge holds

    async def start(self):
        try:
            import serial  # noqa: F401  (pyserial, which the next one needs)
            import serial_asyncio_fast  # noqa: F401
        except ImportError as e:
            raise OSError("ingress.serial needs pyserial-asyncio-fast (pip install -r "
                          "requirements.txt): %s" % e) from None
        self.task = asyncio.create_task(self._run(), name="ingress-serial")
        event(log, logging.INFO, "ingress_started", ingress=self.name, port=self.port,
              baud=self.baud)

    async def stop(self):
        if self.task:
            await ingress.cancel(self.task)
            self.task = None
        self._close()

    async def _run(self):
        import serial
        import serial_asyncio_fast
        last_error = None
        while True:
            try:
                reader, self.writer = await serial_asyncio_fast.open_serial_connection(
                    url=self.port, baudrate=self.baud, limit=4 * bl.MAX_LINE)
            except (OSError, serial.SerialException) as e:
                # Said once as an error, then quietly until it changes or the port opens.
                level = logging.DEBUG if str(e) == last_error else logging.ERROR
                last_error = str(e)
                event(log, level, "serial_open_failed", device="unknown", port=self.port,
                      reason=str(e))
                await asyncio.sleep(self.reopen_s)
                continue
            last_error = None
            event(log, logging.INFO, "serial_opened", device="unknown", port=self.port,
                  reason="open")
            try:
                await self._read(reader)
            except (OSError, serial.SerialException) as e:
                event(log, logging.ERROR, "serial_lost", device="unknown", port=self.port,
                      reason=str(e))
            self._close()
            self._fail_all("port_closed")
            await asyncio.sleep(self.reopen_s)

    async def _read(self, reader):
        while True:
            try:
                data = await asyncio.wait_for(reader.readline(), timeout=1.0)
            except asyncio.TimeoutError:
                self._check_inflight()
                continue
            except (asyncio.LimitOverrunError, ValueError) as e:
                # readline() drops what it read of an overlong line; carry on with the next.
                self.reject("line_too_long", str(e))
                continue
            if not data:
                raise OSError("end of file on %s" % self.port)
            try:
                self.line(data)
            except Exception as e:  # a bug costs one line, never the ingress
                log.exception("serial_error", extra={"fields": {"device": "unknown",
                                                                "reason": repr(e)}})
                self.reject("internal_error", repr(e))
            self._check_inflight()

    def _close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.chip = None

    # -- lines from the bridge ---------------------------------------------------------------

    def line(self, data):
        try:
            line = bl.split(data)
            if line.keyword == "":
                self._other(line.text)
            elif line.keyword == "UP":
                raw, radio = bl.up(line)
                radio["receiver"] = self.receiver
                self.sink(Uplink(raw=raw, source=self.name, received=time.time(),
                                 radio=radio, reply=_Reply(self, radio)))
            elif line.keyword == "CRC":
                bl.crc(line)
                raise bl.LineError("crc_bad", "packet received with a bad CRC")
            elif line.keyword == "OK":
                self._answered(None)
            elif line.keyword == "ERR":
                self._answered(line.fields[0] if line.fields else "unknown")
            elif line.keyword == "READY":
                _, chip, settings = bl.ready(line)
                event(log, logging.INFO, "bridge_ready", device="unknown", port=self.port,
                      chip=chip, settings=settings, reason="READY")
                # A READY after a reset: the downlink the bridge held is gone.
                self._fail_all("bridge_reset")
                self.chip = chip
            else:  # PONG
                event(log, logging.DEBUG, "bridge_pong", device="unknown", reason=line.text)
        except bl.LineError as e:
            self.reject(e.reason, str(e))

    def _other(self, text):
        # The bridge's own log lines start with '# '; anything else (a banner, a traceback)
        # is not the protocol's: counted, so that a bridge in trouble shows.
        if text.startswith("# "):
            event(log, logging.DEBUG, "bridge_log", device="unknown", reason=text[2:])
        elif text:
            self.reject("not_protocol", "not a protocol line: %r" % text[:80])

    # -- downlinks -----------------------------------------------------------------------------

    def queue_downlink(self, data, dn_line):
        self.queue.append((data, dn_line))
        self._next()

    def _next(self):
        if self.inflight is not None or not self.queue:
            return
        if self.writer is None:
            self._fail_all("port_closed")
            return
        data, dn_line = self.queue.popleft()
        self.inflight = (data, dn_line, time.monotonic())
        self.writer.write(dn_line)

    def _answered(self, error):
        if self.inflight is None:
            event(log, logging.WARNING, "bridge_answer_unmatched", device="unknown",
                  reason=error or "OK")
            return
        data = self.inflight[0]
        self.inflight = None
        if error:
            self._downlink_error(data, error)
        self._next()

    def _check_inflight(self):
        if self.inflight and time.monotonic() - self.inflight[2] > _ANSWER_WAIT_S:
            data = self.inflight[0]
            self.inflight = None
            self._downlink_error(data, "no_answer")
            self._next()

    def _fail_all(self, reason):
        pending = ([self.inflight[:2]] if self.inflight else []) + list(self.queue)
        self.inflight = None
        self.queue.clear()
        for data, _ in pending:
            self._downlink_error(data, reason)

    def _downlink_error(self, data, reason):
        rx_windows.downlink_error(self, data, reason, port=self.port)

    def reject(self, reason, message):
        self.metrics.ingress_rejected.labels(self.name, reason).inc()
        event(log, logging.WARNING, "line_rejected", device="unknown", reason=reason,
              detail=message, ingress=self.name, port=self.port)
