# machine.UART on the virtual board (loaded on first use by machine.py).
import _board

_hex = _board.hexs
_unhex = _board.unhex
_check = _board.check
_RXBUF = 256  # the receive buffer the board keeps, as the ESP32 UART driver's default


class UART:
    def __init__(self, id, baudrate=9600, bits=8, parity=None, stop=1, *, tx=None, rx=None,
                 timeout=0, timeout_char=0, rxbuf=256):
        self._id = "uart%d" % id
        self._timeout_ms = timeout

    def init(self, baudrate=9600, *, timeout=None, **kwargs):
        if timeout is not None:
            self._timeout_ms = timeout

    def write(self, buf):
        _board.request("uart_write", uart=self._id, data=_hex(bytes(buf)))
        return len(buf)

    def any(self):
        return _board.request("uart_any", uart=self._id)["n"]

    def read(self, nbytes=-1):
        # The reply carries the bytes as hex: room for a full receive buffer when n < 0.
        size = 2 * (nbytes if nbytes > 0 else _RXBUF) + 128
        reply = _board.request("uart_read", _reply_size=size, uart=self._id, n=nbytes,
                               timeout_ms=self._timeout_ms)
        _board.sleep_us(reply.get("us", 0))
        data = _unhex(reply["data"])
        return data if data else None

    def readinto(self, buf, nbytes=None):
        data = self.read(len(buf) if nbytes is None else nbytes)
        if not data:
            return None
        buf[:len(data)] = data
        return len(data)

    def flush(self):
        pass
