# machine.SPI on the virtual board (loaded on first use by machine.py).
import _board

_hex = _board.hexs
_unhex = _board.unhex
_check = _board.check


class SPI:
    def __init__(self, id=1, baudrate=1000000, *, polarity=0, phase=0, bits=8, firstbit=0,
                 sck=None, mosi=None, miso=None):
        self._bus = "spi%d" % id

    def init(self, *args, **kwargs):
        pass

    def write_readinto(self, write_buf, read_buf):
        reply = _check(_board.request("spi", bus=self._bus, write=_hex(bytes(write_buf))))
        data = _unhex(reply["data"])
        read_buf[:len(data)] = data

    def write(self, buf):
        _check(_board.request("spi", bus=self._bus, write=_hex(bytes(buf))))

    def read(self, nbytes, write=0):
        reply = _check(_board.request("spi", bus=self._bus, write=_hex(bytes([write]) * nbytes)))
        return _unhex(reply["data"])

    def readinto(self, buf, write=0):
        buf[:] = self.read(len(buf), write)


SoftSPI = SPI
