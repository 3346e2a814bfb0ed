# Wi-Fi transport: one frame per UDP datagram to the gateway, then a short reply window in
# which the gateway answers with a receipt (and the commands it holds for this node).
import socket
import time

import network

from net import LinkDown
from net.downlink import reply_window


class WifiLink:
    name = "wifi"

    def __init__(self, cfg, keys, energy, feed):
        self._feed = feed  # the watchdog: joining may take longer than its timeout
        self._cfg = cfg["wifi"]
        self._keys = keys
        self._addr = cfg["addr"]
        self._energy = energy
        self._wlan = network.WLAN(network.STA_IF)
        self._sock = None

    def up(self):
        """Join the network (bounded wait); raise LinkDown if it does not come up."""
        wlan = self._wlan
        if not wlan.isconnected():
            wlan.active(True)
            wlan.connect(self._cfg["ssid"], self._cfg["password"])
            start = time.ticks_ms()
            while not wlan.isconnected():
                if time.ticks_diff(time.ticks_ms(), start) > self._cfg["connect_timeout_ms"]:
                    self._energy.timed("rx", start)
                    raise LinkDown("wifi: no connection to %r" % self._cfg["ssid"])
                self._feed()
                time.sleep_ms(100)
            self._energy.timed("rx", start)
        if self._sock is None:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.settimeout(self._cfg["rx_window_ms"] / 1000)
            self._gateway = socket.getaddrinfo(self._cfg["gateway"], self._cfg["port"])[0][-1]

    def send(self, data, fcnt, window):
        """Send one frame; return (delivered, [command dicts]) from the reply window.
        `window` is the downlink ReplayWindow (state kept by the caller)."""
        start = time.ticks_ms()
        try:
            self._sock.sendto(data, self._gateway)
        except OSError as e:
            raise LinkDown("wifi: send failed (%s)" % e)
        self._energy.add("tx", 1)
        sock = self._sock

        def receive():
            try:
                return sock.recv(256)
            except OSError:
                return None  # the window closed

        delivered, commands = reply_window(receive, self._keys, self._addr, fcnt, window, "wifi")
        self._energy.timed("rx", start)
        return delivered, commands

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
