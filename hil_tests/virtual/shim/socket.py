# `socket` on the virtual board: the built-in sockets, but sending fails while the board
# host has the Wi-Fi link down, as it would on the chip.
from usocket import *  # noqa: F401,F403
import usocket
import _board

_EHOSTUNREACH = 113


class socket:
    def __init__(self, af=usocket.AF_INET, type=usocket.SOCK_STREAM, proto=0):
        self._s = usocket.socket(af, type, proto)

    def _link(self):
        if not _board.request("wifi")["up"]:
            raise OSError(_EHOSTUNREACH)

    def sendto(self, data, addr):
        self._link()
        return self._s.sendto(data, addr)

    def send(self, data):
        self._link()
        return self._s.send(data)

    def __getattr__(self, name):
        return getattr(self._s, name)
