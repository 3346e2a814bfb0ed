# LoRa ingress for gateways that run a Semtech UDP packet forwarder (any commercial
# concentrator gateway can): PUSH_DATA -> PUSH_ACK and one Uplink per good rxpk;
# PULL_DATA -> PULL_ACK, which also tells where the gateway listens for downlinks;
# downlinks go back as PULL_RESP in the node's receive window, and TX_ACK says whether the
# gateway could send them. Every datagram that is not right is counted by reason and logged,
# and the next one is handled as if nothing happened.
import asyncio
import logging
import os
import time


from gateway.ingress import rx_windows
from gateway.ingress import semtech_packets as sp
from gateway.ingress.duty_cycle import TxBudget, Unwrapped
from gateway.logs import event
from gateway.uplink import Uplink

log = logging.getLogger("gateway.ingress.semtech")

# A PULL_RESP waits this long for its TX_ACK (forwarders answer at once, or never: v1 ones).
_TX_ACK_WAIT_S = 30.0


class _Reply(rx_windows.WindowReply):
    """Sends the downlinks of one uplink's receive window through the gateway that heard
    it, each at its time in the node's receive windows (rx_windows)."""

    __slots__ = ("eui",)

    def __init__(self, ingress, eui, radio):
        super().__init__(ingress, radio)
        self.eui = eui

    def _failed(self, data, reason):
        self.ingress._downlink_error(self.eui, data, reason)

    def _booking(self, tmst):
        budget, clock = self.ingress.budget(self.eui)
        return budget, clock.seconds(tmst)

    def _transmit(self, data, tmst, freq_hz):
        r, ing = self.radio, self.ingress
        ing.send_downlink(self.eui, data, sp.txpk(
            data, tmst=tmst, frequency=freq_hz, sf=r["sf"], bw=r["bw"], cr=r["cr"],
            power_dbm=ing.tx_power_dbm))


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, ingress):
        self.ingress = ingress

    def connection_made(self, transport):
        self.ingress.transport = transport

    def datagram_received(self, data, addr):
        try:
            self.ingress.datagram(data, addr)
        except Exception as e:  # a bug costs one datagram, never the ingress
            log.exception("semtech_error", extra={"fields": {"device": "unknown",
                                                             "reason": repr(e)}})
            self.ingress.reject("internal_error", repr(e), addr)

    def error_received(self, exc):
        event(log, logging.DEBUG, "udp_error", device="unknown", reason=str(exc))


class SemtechUdpIngress:
    name = "semtech"

    def __init__(self, *, host="0.0.0.0", port=1700, gateway_euis, sink, metrics,
                 rx_delay_s=1.0, rx2_freq_hz=rx_windows.RX2_FREQ_HZ, tx_power_dbm=14,
                 downlink_failed=None):
        """gateway_euis: the packet forwarders allowed to feed this gateway (16 hex digits
        each); downlink_failed(data, reason): told when a gateway could not send a
        downlink, so that a command in it is not counted as tried."""
        self.host = host
        self.port = port
        self.euis = frozenset(e.lower() for e in gateway_euis)
        self.sink = sink
        self.metrics = metrics
        self.rx_delay_us = round(rx_delay_s * 1e6)
        self.rx2_freq_hz = rx2_freq_hz
        self.tx_power_dbm = tx_power_dbm
        self.downlink_failed = downlink_failed or (lambda data, reason: None)
        self.transport = None
        self.routes = {}  # gateway EUI -> the address its PULL_DATA came from
        self.pending = {}  # PULL_RESP token -> (EUI, frame, time sent)
        self.budgets = {}  # gateway EUI -> (TxBudget, its tmst Unwrapped)

    def budget(self, eui):
        """The duty-cycle budget of one gateway's transmitter, kept in its tmst time."""
        if eui not in self.budgets:
            self.budgets[eui] = (TxBudget(), Unwrapped())
        return self.budgets[eui]

    async def start(self):
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: _Protocol(self),
                                            local_addr=(self.host, self.port))
        self.port = self.transport.get_extra_info("socket").getsockname()[1]
        event(log, logging.INFO, "ingress_started", ingress=self.name, host=self.host,
              port=self.port, gateways=",".join(sorted(self.euis)))

    async def stop(self):
        if self.transport:
            self.transport.close()
            self.transport = None

    # -- upstream -----------------------------------------------------------------------------

    def datagram(self, data, addr):
        try:
            d = sp.parse(data)
        except sp.PacketError as e:
            return self.reject(e.reason, str(e), addr)
        if d.eui not in self.euis:
            return self.reject("unknown_gateway", "%s from gateway %s, which is not in "
                               "ingress.semtech.gateway_euis" % (d.name, d.eui), addr, d.eui)
        if d.ident == sp.PULL_DATA:
            if self.routes.get(d.eui) != addr:
                event(log, logging.INFO, "gateway_route", device="unknown", gateway=d.eui,
                      peer="%s:%d" % addr[:2], reason="PULL_DATA")
            self.routes[d.eui] = addr
            self.transport.sendto(sp.ack(sp.PULL_ACK, d.token), addr)
        elif d.ident == sp.PUSH_DATA:
            # Acknowledged once received, as the protocol asks, before the packets are read:
            # the ack is the gateway's measure of its backhaul, not of our verdict.
            self.transport.sendto(sp.ack(sp.PUSH_ACK, d.token), addr)
            self._push_data(d, addr)
        else:
            self._tx_ack(d, addr)

    def _push_data(self, d, addr):
        try:
            obj = sp.json_body(d.body)
        except sp.PacketError as e:
            return self.reject(e.reason, str(e), addr, d.eui)
        packets = obj.get("rxpk", [])
        if not isinstance(packets, list):
            return self.reject("bad_field", "rxpk is not an array", addr, d.eui)
        if "stat" in obj:
            event(log, logging.DEBUG, "gateway_status", device="unknown", gateway=d.eui,
                  reason="stat", stat=obj["stat"])
        now = time.time()
        for pk in packets:
            try:
                raw, radio = sp.rxpk(pk)
            except sp.PacketError as e:
                self.reject(e.reason, str(e), addr, d.eui)
                continue
            radio["receiver"] = d.eui
            self.sink(Uplink(raw=raw, source=self.name, received=now, radio=radio,
                             reply=_Reply(self, d.eui, radio)))

    def _tx_ack(self, d, addr):
        sent = self.pending.get(d.token)
        if sent is not None and sent[0] == d.eui:
            del self.pending[d.token]
        else:
            sent = None  # another gateway's token, or one we did not send
        try:
            ok, what = sp.tx_result(d.body)
        except sp.PacketError as e:
            # Whether it was sent is unknown: the command keeps its attempt, and goes again
            # with the next uplink anyway if the node does not acknowledge it.
            return self.reject(e.reason, str(e), addr, d.eui)
        if sent is None:
            event(log, logging.DEBUG, "tx_ack_unmatched", device="unknown", gateway=d.eui,
                  token=d.token, reason=what)
            return
        if ok:
            if what != sp.TX_OK:
                event(log, logging.WARNING, "downlink_warning", device="unknown",
                      gateway=d.eui, reason=what)
            return
        self._downlink_error(d.eui, sent[1], what)

    # -- downstream ---------------------------------------------------------------------------

    def send_downlink(self, eui, data, txpk):
        addr = self.routes.get(eui)
        if addr is None or self.transport is None:
            return self._downlink_error(eui, data, "no_route")
        now = time.monotonic()
        if len(self.pending) > 1000:
            for token in [t for t, p in self.pending.items() if now - p[2] > _TX_ACK_WAIT_S]:
                del self.pending[token]
            while len(self.pending) > 30000:  # keeps free tokens whatever the load
                del self.pending[next(iter(self.pending))]
        token = int.from_bytes(os.urandom(2), "big")
        while token in self.pending:  # 16 bits: a token still waiting must not be reused
            token = (token + 1) & 0xFFFF
        self.pending[token] = (eui, data, now)
        self.transport.sendto(sp.pull_resp(token, txpk), addr)

    def _downlink_error(self, eui, data, reason):
        rx_windows.downlink_error(self, data, reason, gateway=eui)

    def reject(self, reason, message, addr, eui="unknown"):
        self.metrics.ingress_rejected.labels(self.name, reason).inc()
        event(log, logging.WARNING, "datagram_rejected", device="unknown", reason=reason,
              detail=message, ingress=self.name, gateway=eui, peer="%s:%d" % addr[:2])
