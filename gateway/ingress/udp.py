# UDP ingress for Wi-Fi nodes: one frame per datagram. Downlinks (receipt, command) go back
# to the datagram's source address, where the node listens for a short reply window.
import asyncio
import logging
import time

from gateway.logs import event
from gateway.uplink import Uplink

log = logging.getLogger("gateway.ingress.udp")


class _Reply:
    """Sends a downlink to one node's address on the ingress socket."""

    __slots__ = ("transport", "addr")

    def __init__(self, transport, addr):
        self.transport = transport
        self.addr = addr

    def __call__(self, data):
        self.transport.sendto(data, self.addr)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, ingress):
        self.ingress = ingress
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.ingress.sink(Uplink(raw=data, source=self.ingress.name, received=time.time(),
                                 radio={"peer": "%s:%d" % addr[:2]},
                                 reply=_Reply(self.transport, addr)))

    def error_received(self, exc):
        # ICMP port unreachable from a node that stopped listening: not our problem.
        event(log, logging.DEBUG, "udp_error", device="unknown", reason=str(exc))


class UdpIngress:
    name = "udp"

    def __init__(self, *, host="127.0.0.1", port=4700, sink):
        self.host = host
        self.port = port
        self.sink = sink
        self.transport = None

    async def start(self):
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.host, self.port))
        sock = self.transport.get_extra_info("socket")
        self.port = sock.getsockname()[1]  # the real port when 0 was asked for
        event(log, logging.INFO, "ingress_started", ingress=self.name, host=self.host,
              port=self.port)

    async def stop(self):
        if self.transport:
            self.transport.close()
            self.transport = None
