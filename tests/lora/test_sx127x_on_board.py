"""The SX127x model behind the virtual board's shim: MicroPython code (register sequences from
the datasheet, not the firmware driver) drives NSS, NRESET and SPI, waits for DIO0 with
Pin.irq, and hears a gateway's answer through the packet forwarder in its receive window."""
import pytest

from hil_tests.virtual.air import Air
from hil_tests.virtual.board import VirtualBoard
from hil_tests.virtual.models.sx127x import SX127x
from hil_tests.virtual.packet_forwarder import PacketForwarder
from protocol import airtime
from tests.lora.test_packet_forwarder import EUI, Server, txpk_for

MAIN = r"""
import time
from machine import Pin, SPI

cs = Pin(15, Pin.OUT, value=1)
rst = Pin(4, Pin.OUT, value=1)
dio0 = Pin(35, Pin.IN)
spi = SPI(1, baudrate=5000000, sck=Pin(14), mosi=Pin(13), miso=Pin(12))

def wr(addr, *values):
    cs(0)
    spi.write(bytes([addr | 0x80] + list(values)))
    cs(1)

def rd(addr, n=1):
    buf = bytearray(n + 1)
    cs(0)
    spi.write_readinto(bytes([addr] + [0] * n), buf)
    cs(1)
    return buf[1] if n == 1 else bytes(buf[1:])

rst(0); time.sleep_us(200); rst(1); time.sleep_ms(6)
print("version", hex(rd(0x42)))
wr(0x01, 0x80); wr(0x01, 0x81)
frf = 868100000 * (1 << 19) // 32000000
wr(0x06, frf >> 16, (frf >> 8) & 0xFF, frf & 0xFF)
wr(0x1D, 0x72); wr(0x1E, 0x94); wr(0x09, 0x8C)
flag = []
dio0.irq(lambda p: flag.append(time.ticks_us()), Pin.IRQ_RISING)
wr(0x0D, 0x80); wr(0x00, *b"hello air"); wr(0x22, 9); wr(0x40, 0x40)
t0 = time.ticks_us()
wr(0x01, 0x83)
n = 0
while not flag and n < 5000:
    time.sleep_ms(1)
    n += 1
print("txdone", time.ticks_diff(flag[0], t0) if flag else -1, hex(rd(0x12)))
wr(0x12, 0xFF)
wr(0x33, 0x66); wr(0x3B, 0x19); wr(0x1F, 8); wr(0x40, 0x00)
del flag[:]
time.sleep_us(1000000 + TX_US - 3000 - time.ticks_diff(time.ticks_us(), t0))
t1 = time.ticks_us()
wr(0x01, 0x86)
n = 0
while not flag and n < 5000:
    time.sleep_ms(1)
    n += 1
irq = rd(0x12)
wr(0x0D, rd(0x10))
print("rx", hex(irq), rd(0x00, rd(0x13)), time.ticks_diff(time.ticks_us(), t1))
"""


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def test_driverless_code_sends_waits_on_dio0_irq_and_hears_the_downlink(tmp_path, server):
    toa_us = round(airtime.time_on_air_ms(9, 9, 125, 1) * 1000)
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text(MAIN.replace("TX_US", str(toa_us)))
    air = Air(answer_timeout=2.0, max_wait=20)
    radio = SX127x(bus="spi1", cs=15, dio0=35, reset=4, air=air, position=(500.0, 0.0))
    server.downlink = txpk_for
    server.answer_delay = 0.6  # real seconds the node's receive window must not count
    board = VirtualBoard(flash, name="lora-node", log_dir=tmp_path,
                         models=[radio, *radio.pins()])
    with PacketForwarder(air, server.addr, eui=EUI):
        try:
            board.run(timeout=60)
        finally:
            air.leave(radio)
            board.close()
    lines = "\n".join(board.console)
    assert "version 0x12" in lines, lines
    txdone = board.expect(r"txdone (\d+) 0x8").group(1)
    # TxDone is seen at the first 1 ms poll after the datasheet's time on air (plus the
    # real time of the bus requests on a loaded host).
    assert toa_us <= int(txdone) <= toa_us + 20000, lines
    rx = board.expect(r"rx 0x50 b'cmd' (\d+)")
    down_us = airtime.time_on_air_ms(3, 9, 125, 1) * 1000
    # The node's clock did not count the real time it waited for the gateway's answer.
    assert int(rx.group(1)) < 3000 + down_us + 30000, lines
    assert [e["fate"] for e in air.log] == ["delivered", "delivered"]
