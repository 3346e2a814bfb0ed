# UDP ingress for Wi-Fi nodes: one frame per datagram. Downlinks (receipt, command) go back
# to the datagram's source address, where the node listens for a short reply window.
#
# The socket is read directly rather than through asyncio's datagram transport: that one
# takes a single datagram per event-loop turn, so under load the pipeline would see (and
# commit) one uplink at a time. Reading every datagram that is waiting lets the pipeline
# store them in one transaction.
import asyncio
import logging
import socket
import time

from gateway.logs import event
from gateway.uplink import Uplink

log = logging.getLogger("gateway.ingress.udp")

# Datagrams taken per wake-up at most, so that a flood cannot starve the rest of the loop;
# the pipeline queue (ingress.udp.queue_max) bounds what waits beyond that.
_DRAIN_MAX = 512
_MAX_DATAGRAM = 65535
_RCVBUF = 4 << 20


class _Reply:
    """Sends a downlink to one node's address on the ingress socket."""

    __slots__ = ("sock", "addr")

    def __init__(self, sock, addr):
        self.sock = sock
        self.addr = addr

    def __call__(self, data):
        # Non-blocking; a full send buffer raises BlockingIOError (an OSError), which the
        # pipeline counts as a failed downlink: the node asks again with its next uplink.
        self.sock.sendto(data, self.addr)


class UdpIngress:
    name = "udp"

    def __init__(self, *, host="127.0.0.1", port=4700, sink):
        self.host = host
        self.port = port
        self.sink = sink
        self.sock = None
        self._loop = None

    async def start(self):
        self._loop = asyncio.get_running_loop()
        infos = await self._loop.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM,
                                             flags=socket.AI_PASSIVE)
        family, kind, proto, _, addr = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            # Room for the bursts that arrive while the pipeline commits a group (many nodes
            # waking together); the kernel caps it at net.core.rmem_max.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            sock.bind(addr)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.port = sock.getsockname()[1]  # the real port when 0 was asked for
        self._loop.add_reader(sock.fileno(), self._readable)
        event(log, logging.INFO, "ingress_started", ingress=self.name, host=self.host,
              port=self.port)

    def _readable(self):
        sock, sink, name = self.sock, self.sink, self.name
        for _ in range(_DRAIN_MAX):
            try:
                data, addr = sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                # ICMP port unreachable from a node that stopped listening: not our problem.
                event(log, logging.DEBUG, "udp_error", device="unknown", reason=str(e))
                continue
            sink(Uplink(raw=data, source=name, received=time.time(),
                        radio={"peer": "%s:%d" % addr[:2]}, reply=_Reply(sock, addr)))

    async def stop(self):
        if self.sock:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
