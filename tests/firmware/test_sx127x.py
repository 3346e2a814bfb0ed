"""The SX127x driver (firmware/net/sx127x.py), unchanged and compiled as on a board, against
the SX1276 device model written from the datasheet (hil_tests/virtual/models/sx127x.py):
what goes on air, a packet heard, a packet with a bad CRC, a missing chip, a chip that never
ends its transmission."""
import pytest

from hil_tests.virtual.models.sx127x import SX127x

SCRIPT = """
import machine, time
from net.sx127x import SX127x, RadioError, RadioTimeout
spi = machine.SPI(1, baudrate=5000000, sck=machine.Pin(5), mosi=machine.Pin(27),
                  miso=machine.Pin(19))
try:
    r = SX127x(spi, machine.Pin(15), machine.Pin(4), machine.Pin(35), freq_hz=868300000,
               sf=9, bw_hz=125000, cr=6, power_dbm=14, preamble=8)
except RadioError as e:
    print("radio error:", e)
    raise SystemExit
print("ready")
%s
print("done")
"""


@pytest.fixture
def radio_board(script_board):
    def make(body, radio=None):
        return script_board(SCRIPT % body, radio or SX127x(bus="spi1", cs=15, dio0=35, reset=4))
    return make


def test_a_sent_packet_goes_on_air_with_the_configured_modulation(radio_board):
    board, radio = radio_board("""
t0 = time.ticks_us()
end = r.send(b"\\x01\\x02cityedge", 2000)
print("tx_us", time.ticks_diff(end, t0))
""")
    board.run()
    board.expect("done")
    assert len(radio.sent) == 1
    frame = radio.sent[0]
    assert frame.payload == b"\x01\x02cityedge"
    assert abs(frame.freq_hz - 868300000) < 62  # one step of the synthesiser (61 Hz)
    assert (frame.sf, frame.bw_khz, frame.cr, frame.preamble) == (9, 125, 2, 8)
    assert frame.crc and not frame.implicit and not frame.iq_inverted
    assert frame.sync_word == 0x12 and frame.power_dbm == 14
    # The driver returns once TxDone is up: never before the packet's airtime is over.
    # (Each register access here is a round trip to the host, so the upper bound is loose.)
    airtime_us = frame.end - frame.start
    tx_us = int(board.expect(r"tx_us (\d+)").group(1))
    assert airtime_us <= tx_us <= airtime_us + 200000


def test_a_packet_is_received_with_its_rssi_and_snr(radio_board):
    radio = SX127x(bus="spi1", cs=15, dio0=35, reset=4)
    radio.inject(b"downlink!", rssi=-95.0, snr=6.5, start=300000, freq_hz=868300000, sf=9,
                 bw_khz=125, cr=2)
    board, _ = radio_board("""
p = r.recv(5000)
print("got", p[0].hex(), p[1], p[2])
""", radio)
    board.run()
    found = board.expect(r"got ([0-9a-f]+) (-?\d+) (-?\d+)")
    assert bytes.fromhex(found.group(1)) == b"downlink!"
    assert int(found.group(2)) == -95
    assert int(found.group(3)) == 26  # 6.5 dB in the register's quarter-dB steps


def test_a_packet_with_a_bad_crc_is_not_returned(radio_board):
    radio = SX127x(bus="spi1", cs=15, dio0=35, reset=4)
    radio.inject(b"garbled", start=300000, corrupt=True, freq_hz=868300000, sf=9, bw_khz=125,
                 cr=2)
    board, _ = radio_board("""
print("got", r.recv(5000))
""", radio)
    board.run()
    board.expect("got None")


def test_a_downlink_goes_out_with_inverted_iq(radio_board):
    board, radio = radio_board("""
r.configure(invert_iq=True)
end = r.send(b"\\xaa", 2000)
""")
    board.run()
    board.expect("done")
    assert radio.sent[0].iq_inverted


def test_the_receive_window_gives_up_without_a_header(radio_board):
    board, radio = radio_board("""
t0 = time.ticks_ms()
p = r.recv(3000, 200)
print("waited", time.ticks_diff(time.ticks_ms(), t0), p)
""")
    board.run()
    found = board.expect(r"waited (\d+) None")
    assert 200 <= int(found.group(1)) < 300


def test_a_missing_chip_gives_an_error_naming_it(radio_board):
    radio = SX127x(bus="spi1", cs=15, dio0=35, reset=4)
    radio.fault = "nack"
    board, _ = radio_board("", radio)
    board.run()
    board.expect(r"radio error: sx127x: RegVersion is 0x00, not 0x12")


def test_a_transmission_that_never_ends_times_out(radio_board):
    board, radio = radio_board("""
try:
    r.send(b"\\x01", 500)
except RadioTimeout as e:
    print("timeout:", e)
""")
    radio.fault = "no_txdone"
    board.run()
    board.expect("timeout: sx127x: no TxDone within 500 ms")


# The virtual board's `time` counts virtual time from each boot; the port's C task queue
# (_asyncio) stamps new tasks with the host's own ticks. asyncio's scheduler is put on the
# host's ticks here so the two agree (on a chip they are the same clock). Its waits are
# real time, and so is the board's clock meanwhile.
ASYNC = """
import asyncio, utime
from asyncio import core
core.ticks, core.ticks_diff, core.ticks_add = utime.ticks_ms, utime.ticks_diff, utime.ticks_add
from net.sx127x_async import AsyncSX127x
a = AsyncSX127x(r)
ticks = [0]

async def ticker():  # another task of the firmware: it runs while the radio waits
    while True:
        ticks[0] += 1
        await asyncio.sleep_ms(5)

async def main():
    task = asyncio.create_task(ticker())
    %s
    task.cancel()

asyncio.run(main())
"""


def test_the_asyncio_adapter_sends_and_receives_while_other_tasks_run(radio_board):
    radio = SX127x(bus="spi1", cs=15, dio0=35, reset=4)
    # Heard 0.5 s into the run; the send before it takes about 100 ms of airtime.
    radio.inject(b"async down", rssi=-90.0, snr=4.0, start=500000, freq_hz=868300000, sf=9,
                 bw_khz=125, cr=2)
    board, _ = radio_board(ASYNC % """
    t0 = time.ticks_us()
    end = await a.send(b"async up", 2000, r.time_on_air_ms(8))
    print("tx_us", time.ticks_diff(end, t0), "ticks", ticks[0])
    p = await a.recv(5000)
    print("got", p[0].hex(), p[1], p[2], "ticks", ticks[0])
    print("quiet", await a.recv(3000, 200))""", radio)
    board.run()
    board.expect("done")
    tx = board.expect(r"tx_us (\d+) ticks (\d+)")
    frame = radio.sent[0]
    assert frame.payload == b"async up"
    assert frame.end - frame.start <= int(tx.group(1)) < frame.end - frame.start + 200000
    assert int(tx.group(2)) >= 5  # the ticker ran during the ~100 ms on air
    got = board.expect(r"got ([0-9a-f]+) (-?\d+) (-?\d+) ticks (\d+)")
    assert bytes.fromhex(got.group(1)) == b"async down"
    assert int(got.group(3)) == 16  # SNR 4 dB in quarter dB
    assert int(got.group(4)) > int(tx.group(2))
    board.expect("quiet None")  # nothing more: the window gives up without a header


def test_the_asyncio_adapter_times_out_a_transmission_that_never_ends(radio_board):
    board, radio = radio_board(ASYNC % """
    try:
        await a.send(b"\\x01", 300)
    except RadioTimeout as e:
        print("timeout:", e, "ticks", ticks[0])""")
    radio.fault = "no_txdone"
    board.run()
    found = board.expect(r"timeout: sx127x: no TxDone within 300 ms ticks (\d+)")
    assert int(found.group(1)) >= 20
