"""The SX1262 driver (firmware/net/sx126x.py), compiled as on a board, against the SX126x
device model written from the datasheet (hil_tests/virtual/models/sx126x.py), each on its
own: what goes on air, a packet heard, a bad CRC, inverted IQ, a missing chip, and the
asyncio adapter driving it while another task runs."""
import pytest

from hil_tests.virtual.models.sx126x import SX126x
from tests.firmware.test_sx127x import ASYNC

SCRIPT = """
import machine, time
from net.sx126x import SX126x, RadioError, RadioTimeout
spi = machine.SPI(1, baudrate=5000000, sck=machine.Pin(9), mosi=machine.Pin(10),
                  miso=machine.Pin(11))
try:
    r = SX126x(spi, machine.Pin(8), machine.Pin(12), machine.Pin(13), machine.Pin(14),
               freq_hz=868300000, sf=9, bw_hz=125000, cr=6, power_dbm=14, preamble=8,
               tcxo_mv=1800)
except RadioError as e:
    print("radio error:", e)
    raise SystemExit
print("ready")
%s
print("done")
"""


def chip():
    return SX126x(bus="spi1", cs=8, busy=13, dio1=14, reset=12)


@pytest.fixture
def radio_board(script_board):
    def make(body, radio=None):
        return script_board(SCRIPT % body, radio or chip())
    return make


def test_a_sent_packet_goes_on_air_with_the_configured_modulation(radio_board):
    board, radio = radio_board("""
t0 = time.ticks_us()
end = r.send(b"\\x01\\x02cityedge", 2000)
print("tx_us", time.ticks_diff(end, t0))
""")
    board.run()
    board.expect("done")
    frame, = radio.sent
    assert frame.payload == b"\x01\x02cityedge"
    assert abs(frame.freq_hz - 868300000) < 2  # the synthesiser's step: 32 MHz / 2^25
    assert (frame.sf, frame.bw_khz, frame.cr, frame.preamble) == (9, 125, 2, 8)
    assert frame.crc and not frame.implicit and not frame.iq_inverted
    assert frame.sync_word == 0x12 and frame.power_dbm == 14
    # Never before the packet's airtime is over (each command is a round trip to the host).
    airtime_us = frame.end - frame.start
    assert airtime_us <= int(board.expect(r"tx_us (\d+)").group(1)) <= airtime_us + 200000


def test_a_packet_is_received_with_its_rssi_and_snr_and_a_bad_crc_is_not(radio_board):
    radio = chip()
    radio.inject(b"downlink!", rssi=-95.0, snr=6.5, start=300000, freq_hz=868300000, sf=9,
                 bw_khz=125, cr=2)
    radio.inject(b"garbled", start=1500000, corrupt=True, freq_hz=868300000, sf=9,
                 bw_khz=125, cr=2)
    board, _ = radio_board("""
p = r.recv(5000)
print("got", p[0].hex(), p[1], p[2])
print("then", r.recv(5000))
""", radio)
    board.run()
    found = board.expect(r"got ([0-9a-f]+) (-?\d+) (-?\d+)")
    assert bytes.fromhex(found.group(1)) == b"downlink!"
    # RssiPkt is the signal and the noise in the band: -95 dBm at 6.5 dB SNR reads -94.
    assert int(found.group(2)) == -94
    assert int(found.group(3)) == 26  # 6.5 dB in quarter-dB steps
    board.expect("then None")


def test_a_downlink_goes_out_with_inverted_iq_and_one_is_heard_so(radio_board):
    radio = chip()
    radio.inject(b"receipt", start=800000, freq_hz=868300000, sf=9, bw_khz=125, cr=2,
                 iq_inverted=True)
    board, _ = radio_board("""
r.configure(invert_iq=True)
r.send(b"\\xaa", 2000)
p = r.recv(5000)
print("heard", p[0])
""", radio)
    board.run()
    board.expect("heard b'receipt'")
    assert radio.sent[0].iq_inverted


def test_a_missing_chip_is_a_clear_error(radio_board):
    radio = chip()
    radio.fault = "nack"
    board, _ = radio_board("", radio)
    board.run()
    board.expect("radio error: sx126x: sync word register reads 0x0000, not 0x1424: no "
                 "SX1261/2 on this SPI bus and chip select")


def test_the_asyncio_adapter_drives_it_while_another_task_runs(radio_board):
    radio = chip()
    radio.inject(b"async down", rssi=-90.0, snr=4.0, start=500000, freq_hz=868300000, sf=9,
                 bw_khz=125, cr=2)
    board, _ = radio_board(ASYNC % """
    end = await a.send(b"async up", 2000, r.time_on_air_ms(8))
    print("sent ticks", ticks[0])
    p = await a.recv(5000)
    print("got", p[0].hex(), "ticks", ticks[0])""", radio)
    board.run()
    board.expect("done")
    assert radio.sent[0].payload == b"async up"
    sent = int(board.expect(r"sent ticks (\d+)").group(1))
    assert sent >= 5  # the ticker ran during the ~100 ms on air
    got = board.expect(r"got ([0-9a-f]+) ticks (\d+)")
    assert bytes.fromhex(got.group(1)) == b"async down" and int(got.group(2)) > sent
