# Peacefair PZEM-004T v3.0 AC power meter, Modbus RTU over a TTL UART (9600 8N1).
# Datasheet ("PZEM-004T V3.0 user manual"): section 2.3 the input registers 0x0000..0x0009,
# section 2.4 the function codes, section 2.5 the exception frame, section 2.6 the CRC.
# Every register is 16 bits big-endian on the wire; a 32-bit value spans two registers with
# the LOW word first. The meter keeps its energy counter in its own flash.
from micropython import const

from sensors.errors import BusError, CRCError, SensorTimeout

_GENERAL_ADDR = const(0xF8)     # 2.2: every meter answers it (one meter on the bus)
_READ_INPUT = const(0x04)       # 2.4: read input registers
_EXCEPTION = const(0x80)        # 2.5: function code | 0x80 in an error reply
_REGISTERS = const(10)          # 2.3: 0x0000 voltage .. 0x0009 alarm status
_REPLY_LEN = const(25)          # addr, 0x04, byte count 20, 20 data bytes, CRC lo, CRC hi
_ERROR_LEN = const(5)           # addr, fc | 0x80, exception code, CRC lo, CRC hi
_CRC_POLY = const(0xA001)       # 2.6: CRC-16/MODBUS, reflected 0x8005, init 0xFFFF


def crc16(buf, n):
    """CRC-16/MODBUS of the first n bytes (sent low byte first)."""
    crc = 0xFFFF
    for i in range(n):
        crc ^= buf[i]
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ _CRC_POLY
            else:
                crc >>= 1
    return crc


class PZEM004T:
    """values() -> [volts, amps, watts, wh, hz, power factor, alarm] (one list, reused);
    raises SensorTimeout when the meter does not answer, CRCError on a corrupt reply,
    BusError on an exception reply or a reply to something else. The UART's own timeout
    bounds the wait. (Resetting the energy counter, function 0x42, is left to the
    installer's tools: a street light's energy counts from its installation.)"""

    def __init__(self, uart, addr=_GENERAL_ADDR):
        self._uart = uart
        self._req = bytearray(8)
        self._reply = bytearray(_REPLY_LEN)
        self._values = [0.0, 0.0, 0.0, 0, 0.0, 0.0, 0]
        req = self._req
        req[0], req[1] = addr, _READ_INPUT
        req[2], req[3], req[4], req[5] = 0, 0, 0, _REGISTERS  # start 0x0000, count 10
        crc = crc16(req, 6)
        req[6], req[7] = crc & 0xFF, crc >> 8

    def values(self):
        uart, req, r = self._uart, self._req, self._reply
        if uart.any():
            uart.read()  # a late reply to an earlier request would shift this one
        uart.write(req)
        got = uart.readinto(r) or 0
        if got >= _ERROR_LEN and r[1] & _EXCEPTION:
            if crc16(r, 3) != r[3] | r[4] << 8:
                raise CRCError("pzem-004t: bad CRC in an exception reply")
            raise BusError("pzem-004t: exception %d" % r[2])
        if got < _REPLY_LEN:
            raise SensorTimeout("pzem-004t: %d of %d bytes (meter unpowered or unplugged)"
                                % (got, _REPLY_LEN))
        if crc16(r, _REPLY_LEN - 2) != r[_REPLY_LEN - 2] | r[_REPLY_LEN - 1] << 8:
            raise CRCError("pzem-004t: bad CRC")
        if r[1] != _READ_INPUT or r[2] != 2 * _REGISTERS:
            raise BusError("pzem-004t: unexpected reply %02x %02x" % (r[1], r[2]))
        v = self._values
        v[0] = (r[3] << 8 | r[4]) / 10                                      # 0.1 V
        v[1] = ((r[7] << 8 | r[8]) << 16 | r[5] << 8 | r[6]) / 1000         # 0.001 A
        v[2] = ((r[11] << 8 | r[12]) << 16 | r[9] << 8 | r[10]) / 10        # 0.1 W
        v[3] = (r[15] << 8 | r[16]) << 16 | r[13] << 8 | r[14]              # 1 Wh
        v[4] = (r[17] << 8 | r[18]) / 10                                    # 0.1 Hz
        v[5] = (r[19] << 8 | r[20]) / 100                                   # 0.01
        v[6] = r[21] << 8 | r[22]                                           # 0xFFFF: alarm
        return v
