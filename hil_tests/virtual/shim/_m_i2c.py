# machine.I2C on the virtual board (loaded on first use by machine.py).
import _board

_hex = _board.hexs
_unhex = _board.unhex
_check = _board.check


class I2C:
    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        self._bus = "i2c%d" % id if isinstance(id, int) else str(id)

    def _xfer(self, addr, write=b"", read=0, stop=True):
        reply = _check(_board.request("i2c", bus=self._bus, addr=addr, write=_hex(write),
                                      read=read))
        if reply.get("us"):
            _board.sleep_us(reply["us"])  # clock stretching / bus time
        return _unhex(reply.get("data", ""))

    def scan(self):
        return _board.request("i2c_scan", bus=self._bus)["addrs"]

    def writeto(self, addr, buf, stop=True):
        self._xfer(addr, bytes(buf))
        return len(buf)

    def readfrom(self, addr, nbytes, stop=True):
        return self._xfer(addr, b"", nbytes)

    def readfrom_into(self, addr, buf, stop=True):
        data = self._xfer(addr, b"", len(buf))
        buf[:len(data)] = data

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._xfer(addr, bytes([memaddr]) + bytes(buf))

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        return self._xfer(addr, bytes([memaddr]), nbytes)

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        data = self._xfer(addr, bytes([memaddr]), len(buf))
        buf[:len(data)] = data


SoftI2C = I2C
