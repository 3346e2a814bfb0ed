# `network` on the virtual board: a station interface whose link the board host controls
# (fault injection: Wi-Fi down). Sockets are real UDP sockets on loopback (see socket.py).
import _board

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202


class WLAN:
    def __init__(self, interface=STA_IF):
        self._active = False
        self._ssid = None
        self._ready_at = 1 << 62  # not before connect()

    def active(self, is_active=None):
        if is_active is None:
            return self._active
        self._active = bool(is_active)

    def connect(self, ssid=None, key=None, **kwargs):
        self._ssid = ssid
        # Joining takes time (scan, authentication, DHCP): the host says how long.
        reply = _board.request("wifi_connect", ssid=ssid)
        self._ready_at = _board.now_us() + reply.get("connect_ms", 0) * 1000

    def disconnect(self):
        _board.request("wifi_disconnect")

    def status(self, param=None):
        if param == "rssi":
            return _board.request("wifi")["rssi"]
        return STAT_GOT_IP if self.isconnected() else STAT_NO_AP_FOUND

    def isconnected(self):
        return (self._active and _board.now_us() >= self._ready_at
                and _board.request("wifi")["up"])

    def ifconfig(self, *args):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def config(self, *args, **kwargs):
        if args == ("mac",):
            return _board.boot["mac"]
        return None
