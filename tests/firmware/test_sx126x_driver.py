"""The SX1262 driver (firmware/net/sx126x.py) against a scripted stand-in for its SPI bus and
pins: every command's bytes as the SX1261/2 datasheet (rev. 2.1) lays them out, checked
on CPython with a virtual clock, and the same script on the MicroPython unix port with an
ESP32's 96 KB heap. The chip's device model for the virtual board is written separately,
from the datasheet; these tests do not use it."""
import json
from fractions import Fraction
from pathlib import Path

import pytest

from gateway.ingress import spi_adapter
from tools import mpybuild

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "firmware" / "net" / "sx126x.py"

# The stand-in, as source that runs unchanged on CPython and on MicroPython.
FAKE = r'''
class Pin:
    IN = 1
    OUT = 3
    IRQ_RISING = 1

    def __init__(self, level=0):
        self.level = level
        self.handler = None
        self.history = []

    def init(self, mode=-1, value=None):
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = v
        if self.history is not None:
            self.history.append(v)

    def __call__(self, v=None):
        return self.value(v)

    def irq(self, handler=None, trigger=0):
        self.handler = handler


class Chip:
    """An SPI bus with an SX1262 behind it, as far as these tests need one: it records
    every transaction and answers as the datasheet says, a status byte first (Get
    commands after the opcode, ReadRegister after the address, ReadBuffer after the
    offset), then the data. SetSleep takes BUSY high until NSS wakes the chip (8.2.2)."""

    STATUS = 0x22  # STDBY_RC, no command error

    def __init__(self, cs, busy, dio1, present=True):
        self.cs, self.busy, self.dio1 = cs, busy, dio1
        self.present = present
        self.log = []
        # 0x0736 and 0x08D8 hold bits besides the errata's, which must survive.
        self.regs = {0x0740: 0x14, 0x0741: 0x24, 0x0736: 0x09, 0x0889: 0x00, 0x08D8: 0xC0}
        self.buffer = bytearray(256)
        self.irq = 0
        self.rx = (0, 0)        # GetRxBufferStatus: PayloadLengthRx, RxStartBufferPointer
        self.pkt = (0, 0, 0)    # GetPacketStatus: RssiPkt, SnrPkt, SignalRssiPkt
        self.on_tx = 0          # IRQ bits raised by SetTx (TxDone: a quick transmission)
        self.on_rx = 0          # IRQ bits raised by SetRx (a packet heard at once)
        self.asleep = False
        self.quiet = False      # answer IRQ commands in place, record nothing, allocate nothing

    def raise_irq(self, bits):
        self.irq |= bits
        self.dio1.level = 1
        if self.dio1.handler is not None:
            self.dio1.handler(self.dio1)

    def write_readinto(self, w, r):
        if self.cs.level != 0:
            raise OSError("SPI transaction without chip select")
        if self.quiet:
            if w[0] == 0x12:
                r[2] = self.irq >> 8
                r[3] = self.irq & 0xFF
            elif w[0] == 0x02:
                self.irq &= ~(w[1] << 8 | w[2])
            return
        cmd = bytes(w)
        if self.log is not None:
            self.log.append(cmd)
        out = bytearray(len(cmd))
        if self.asleep:
            self.asleep = False   # woken by NSS; the bytes themselves are lost
            self.busy.level = 0
        elif self.present:
            if self.busy.level:
                raise OSError("SPI transaction while BUSY is high")
            self.answer(cmd, out)
        for i in range(len(out)):
            r[i] = out[i]

    def answer(self, cmd, out):
        op = cmd[0]
        if op == 0x1D:    # ReadRegister: address, status, data
            addr = cmd[1] << 8 | cmd[2]
            out[3] = self.STATUS
            for i in range(4, len(cmd)):
                out[i] = self.regs.get(addr + i - 4, 0)
        elif op == 0x0D:  # WriteRegister
            addr = cmd[1] << 8 | cmd[2]
            for i in range(3, len(cmd)):
                self.regs[addr + i - 3] = cmd[i]
        elif op == 0x0E:  # WriteBuffer
            for i in range(2, len(cmd)):
                self.buffer[(cmd[1] + i - 2) & 0xFF] = cmd[i]
        elif op == 0x1E:  # ReadBuffer: offset, status, data
            out[2] = self.STATUS
            for i in range(3, len(cmd)):
                out[i] = self.buffer[(cmd[1] + i - 3) & 0xFF]
        elif op == 0x12:  # GetIrqStatus
            out[1], out[2], out[3] = self.STATUS, self.irq >> 8, self.irq & 0xFF
        elif op == 0x02:  # ClearIrqStatus
            self.irq &= ~(cmd[1] << 8 | cmd[2])
            if not self.irq & 0x0263:
                self.dio1.level = 0
        elif op == 0x13:  # GetRxBufferStatus
            out[1], out[2], out[3] = self.STATUS, self.rx[0], self.rx[1]
        elif op == 0x14:  # GetPacketStatus
            out[1], out[2], out[3], out[4] = self.STATUS, self.pkt[0], self.pkt[1], self.pkt[2]
        elif op == 0x84:  # SetSleep
            self.asleep = True
            self.busy.level = 1
        elif op == 0x83 and self.on_tx:
            self.raise_irq(self.on_tx)
        elif op == 0x82 and self.on_rx:
            self.raise_irq(self.on_rx)


def board(present=True, busy_level=0):
    cs, busy, dio1, reset = Pin(1), Pin(busy_level), Pin(0), Pin(1)
    return Chip(cs, busy, dio1, present), cs, reset, busy, dio1
'''


class Clock:
    """MicroPython's time functions on a virtual clock: each reading moves it on 10 us,
    each sleep by its length, so the waits run instantly and exactly."""

    def __init__(self):
        self.us = 1000000
        self.sleeps = []

    def ticks_us(self):
        self.us += 10
        return self.us

    def ticks_ms(self):
        self.us += 10
        return self.us // 1000

    @staticmethod
    def ticks_diff(a, b):
        return a - b

    def sleep_us(self, us):
        self.sleeps.append(us)
        self.us += us

    def sleep_ms(self, ms):
        self.sleeps.append(ms * 1000)
        self.us += ms * 1000


# The driver and the net/radio.py it imports, from source on CPython, as the gateway's SPI
# ingress loads its driver (`const` the identity, nothing left in sys.modules).
drv = spi_adapter.load_driver(str(DRIVER))
radio_globals = drv.Radio.sending.__globals__  # net/radio.py's: its waits' clock
fake = {}
exec(FAKE, fake)


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(drv, "time", c)
    monkeypatch.setitem(radio_globals, "time", c)  # the waits in net/radio.py
    return c


def make(present=True, busy_level=0, **options):
    chip, cs, reset, busy, dio1 = fake["board"](present, busy_level)
    radio = drv.SX126x(chip, cs, reset, busy, dio1, **options)
    chip.log.clear()
    return radio, chip


def H(text):
    return bytes.fromhex(text)


def frf_bytes(freq_hz):
    """SetRfFrequency's word straight from 13.4.1: RfFreq = f * 2^25 / Fxtal, nearest step."""
    word = round(Fraction(freq_hz * 2 ** 25, 32000000))
    return word.to_bytes(4, "big")


INIT = [
    H("1d 07 40 00 00 00"),           # sync word registers: the chip is there (0x1424)
    H("80 00"),                       # SetStandby(STDBY_RC)
    H("89 7f"),                       # Calibrate(all blocks)
    H("96 01"),                       # SetRegulatorMode(DC-DC)
    H("9d 01"),                       # SetDIO2AsRfSwitchCtrl(on)
    H("8a 01"),                       # SetPacketType(LoRa)
    H("8f 00 00"),                    # SetBufferBaseAddress(0, 0)
    H("08 02 73 02 63 00 00 00 00"),  # SetDioIrqParams: IrqMask, DIO1, DIO2, DIO3
    H("0d 07 40 14 24"),              # private sync word 0x12
    H("1d 08 d8 00 00"), H("0d 08 d8 de"),  # 15.2: TX clamp |= 0x1E
    # configure():
    H("80 00"),
    H("98 d7 db"),                    # CalibrateImage(863-870 MHz)
    H("86") + frf_bytes(868100000),   # SetRfFrequency
    H("95 02 02 00 01"),              # SetPaConfig: +14 dBm row of table 13-21
    H("8e 16 04"),                    # SetTxParams(+22 at that row, ramp 200 us)
    H("8b 09 04 01 00"),              # SetModulationParams(SF9, 125 kHz, 4/5, LDRO off)
    H("8c 00 08 00 ff 01 00"),        # SetPacketParams(8, explicit, 255, CRC, IQ standard)
    H("1d 07 36 00 00"), H("0d 07 36 0d"),  # 15.4: bit 2 set for standard IQ
]


def test_init_resets_checks_the_chip_and_sends_the_datasheet_sequence(clock):
    chip, cs, reset, busy, dio1 = fake["board"]()
    radio = drv.SX126x(chip, cs, reset, busy, dio1)
    assert chip.log == INIT
    assert reset.history[:2] == [0, 1] and clock.sleeps[0] >= 100  # NRESET low >= 100 us
    assert dio1.handler is not None and cs.level == 1
    assert radio.chip == "sx1262"
    assert (radio.freq_hz, radio.sf, radio.bw_hz, radio.cr, radio.preamble, radio.power_dbm,
            radio.invert_iq) == (868100000, 9, 125000, 5, 8, 14, False)
    assert chip.regs[0x0740] == 0x14 and chip.regs[0x0741] == 0x24


def test_a_tcxo_is_started_on_dio3_before_calibration_and_the_switch_can_stay_off(clock):
    chip2, cs, reset, busy, dio1 = fake["board"]()
    drv.SX126x(chip2, cs, reset, busy, dio1, tcxo_mv=3000, dio2_rf_switch=False,
               sync_word=0x34)
    log = chip2.log
    assert log[1:6] == [H("80 00"), H("97 06 00 01 40"),  # 3.0 V, 320 x 15.625 us = 5 ms
                        H("89 7f"), H("07 00 00"), H("96 01")]
    assert H("9d 01") not in log
    assert H("0d 07 40 34 44") in log  # LoRaWAN's public 0x34
    with pytest.raises(ValueError):
        make(tcxo_mv=2000)


@pytest.mark.parametrize("freq_hz", [868100000, 868300000, 868500000, 869525000, 867100000])
def test_the_frequency_word_is_f_times_2_25_over_32_mhz(clock, freq_hz):
    radio, chip = make()
    radio.configure(freq_hz=freq_hz)
    assert H("86") + frf_bytes(freq_hz) in chip.log
    assert H("98 d7 db") not in chip.log  # the same image band: no new calibration


def test_the_frequency_words_of_the_eu868_channels_and_rx2():
    assert frf_bytes(868100000) == H("36 41 99 9a")
    assert frf_bytes(869525000) == H("36 58 66 66")


def test_a_new_band_gets_its_image_calibration(clock):
    radio, chip = make()
    radio.configure(freq_hz=915000000)
    assert chip.log[1:3] == [H("98 e1 e9"), H("86") + frf_bytes(915000000)]
    radio.configure(freq_hz=433175000)
    assert H("98 6b 6f") in chip.log
    with pytest.raises(ValueError):
        radio.configure(freq_hz=1000000000)


@pytest.mark.parametrize("sf, bw_hz, cr, expected", [
    (7, 125000, 5, "8b 07 04 01 00"),
    (9, 125000, 5, "8b 09 04 01 00"),
    (10, 125000, 6, "8b 0a 04 02 00"),
    (11, 125000, 5, "8b 0b 04 01 01"),  # 16.4 ms symbols: LowDataRateOptimize
    (12, 125000, 8, "8b 0c 04 04 01"),
    (12, 250000, 5, "8b 0c 05 01 01"),
    (11, 250000, 5, "8b 0b 05 01 00"),
    (7, 500000, 7, "8b 07 06 03 00"),
    (5, 62500, 5, "8b 05 03 01 00"),
])
def test_modulation_params(clock, sf, bw_hz, cr, expected):
    radio, chip = make()
    radio.configure(sf=sf, bw_hz=bw_hz, cr=cr)
    assert chip.log[1] == H(expected)
    assert chip.log[2] == H("8c 00 08 00 ff 01 00")


def test_bad_settings_are_refused(clock):
    radio, _ = make()
    for bad in ({"sf": 4}, {"sf": 13}, {"bw_hz": 100000}, {"cr": 9}, {"preamble": 5},
                {"power_dbm": 23}, {"power_dbm": -10}):
        with pytest.raises(ValueError):
            radio.configure(**bad)


def test_packet_params_and_the_iq_polarity_errata_follow_invert_iq(clock):
    radio, chip = make()
    radio.configure(invert_iq=True, preamble=12)
    assert chip.log[2:] == [H("8c 00 0c 00 ff 01 01"), H("1d 07 36 00 00"),
                            H("0d 07 36 09")]  # 15.4: bit 2 cleared, the others kept
    assert radio.invert_iq is True
    chip.log.clear()
    radio.configure(invert_iq=False)
    assert chip.log[2:] == [H("8c 00 0c 00 ff 01 00"), H("1d 07 36 00 00"),
                            H("0d 07 36 0d")]


@pytest.mark.parametrize("dbm, pa, tx", [
    (22, "95 04 07 00 01", "8e 16 04"),
    (20, "95 03 05 00 01", "8e 16 04"),
    (17, "95 02 03 00 01", "8e 16 04"),
    (14, "95 02 02 00 01", "8e 16 04"),
    (10, "95 04 07 00 01", "8e 0a 04"),
    (-9, "95 04 07 00 01", "8e f7 04"),
])
def test_power_follows_table_13_21(clock, dbm, pa, tx):
    radio, chip = make()
    radio.configure(power_dbm=dbm)
    assert chip.log[1:3] == [H(pa), H(tx)]
    assert radio.power_dbm == dbm


def test_a_power_outside_the_sx1262s_range_is_refused(clock):
    radio, chip = make()
    with pytest.raises(ValueError, match="power 23 dBm is not -9..22"):
        radio.configure(power_dbm=23)


def test_load_writes_the_buffer_and_start_send_keys_up(clock):
    radio, chip = make()
    radio.load(b"hello")
    assert chip.log == [
        H("80 00"),
        H("0e 00") + b"hello",                   # WriteBuffer at offset 0
        H("8c 00 08 00 05 01 00"),               # the payload length of this packet
        H("1d 07 36 00 00"), H("0d 07 36 0d"),
        H("1d 08 89 00 00"), H("0d 08 89 04"),   # 15.1: bit 2 set below 500 kHz
        H("02 ff ff"),                           # ClearIrqStatus(all)
    ]
    assert bytes(chip.buffer[:5]) == b"hello"
    chip.log.clear()
    radio.start_send()
    assert chip.log == [H("83 00 00 00")]        # SetTx, no timeout


def test_at_500_khz_the_modulation_quality_bit_is_cleared(clock):
    radio, chip = make(bw_hz=500000)
    chip.regs[0x0889] = 0xFF
    radio.start_send(b"\x01\x02")
    assert H("0d 08 89 fb") in chip.log
    assert chip.log[-1] == H("83 00 00 00")
    with pytest.raises(ValueError):
        radio.load(b"")
    with pytest.raises(ValueError):
        radio.load(bytes(256))


def test_start_recv_listens_continuously(clock):
    radio, chip = make()
    radio.start_recv()
    assert chip.log == [H("80 00"), H("02 ff ff"), H("82 ff ff ff")]
    radio.load(b"up")
    chip.log.clear()
    radio.start_recv()  # after a send: the packet length goes back to 255
    assert chip.log == [H("80 00"), H("8c 00 08 00 ff 01 00"), H("1d 07 36 00 00"),
                        H("0d 07 36 0d"), H("02 ff ff"), H("82 ff ff ff")]


def test_poll_is_quiet_without_dio1_and_reports_tx_done(clock):
    radio, chip = make()
    assert radio.poll() is None and chip.log == []  # no edge, DIO1 low: no SPI at all
    chip.irq = 0x0001
    chip.dio1.handler(chip.dio1)  # the edge
    edge = clock.us
    assert radio.poll() == drv.TX_DONE
    assert chip.log == [H("12 00 00 00"), H("02 00 01")]
    assert radio.done_us == edge
    assert radio.poll() is None


@pytest.mark.parametrize("rssi_pkt, snr_pkt, rssi, snr_x4", [
    (191, 0xE6, -96, -26),  # -95.5 dBm, -6.5 dB
    (120, 0x1A, -60, 26),   # -60 dBm, +6.5 dB
    (0, 0x00, 0, 0),
    (255, 0x80, -128, -128),
])
def test_poll_reads_a_received_packet_with_its_rssi_and_snr(clock, rssi_pkt, snr_pkt, rssi,
                                                            snr_x4):
    radio, chip = make()
    chip.buffer[0x10:0x17] = b"payload"
    chip.rx = (7, 0x10)
    chip.pkt = (rssi_pkt, snr_pkt, 200)
    chip.irq = 0x0012      # RxDone, HeaderValid
    chip.dio1.level = 1    # the edge came before the handler was set: poll reads DIO1
    assert radio.poll() == drv.RX_DONE
    assert radio.packet == (b"payload", rssi, snr_x4, radio.done_us)
    assert chip.log == [H("12 00 00 00"), H("02 00 12"), H("14 00 00 00 00"),
                        H("13 00 00 00"), H("1e 10 00") + bytes(7)]


@pytest.mark.parametrize("irq", [0x0052, 0x0042, 0x0020])  # CrcErr (+RxDone), HeaderErr
def test_a_crc_or_header_error_is_reported_without_the_payload(clock, irq):
    radio, chip = make()
    chip.pkt = (180, 0xF0, 190)
    chip.raise_irq(irq)
    assert radio.poll() == drv.RX_CRC_ERROR
    assert radio.packet == (None, -90, -16, radio.done_us)
    assert not any(cmd[0] in (0x13, 0x1E) for cmd in chip.log)
    assert chip.irq == 0


def test_header_seen_reads_header_valid(clock):
    radio, chip = make()
    assert radio.header_seen() is False
    chip.irq = 0x0010
    assert radio.header_seen() is True
    assert chip.log[-1] == H("12 00 00 00")


def test_a_missing_chip_gives_an_error_naming_what_was_read(clock):
    with pytest.raises(drv.RadioError) as e:
        make(present=False)
    assert str(e.value) == ("sx126x: sync word register reads 0x0000, not 0x1424: no "
                            "SX1261/2 on this SPI bus and chip select")


def test_busy_stuck_high_times_out_with_a_radio_error(clock):
    with pytest.raises(drv.RadioError) as e:
        make(busy_level=1)
    assert "sx126x: BUSY still high after 50 ms" in str(e.value)
    assert 50000 <= clock.us - 1000000 < 60000


def test_sleep_is_warm_and_the_next_command_wakes_the_chip(clock):
    radio, chip = make()
    radio.sleep()
    assert chip.log == [H("80 00"), H("84 04")] and chip.busy.level == 1
    radio.sleep()  # already asleep: nothing
    assert len(chip.log) == 2
    radio.configure(freq_hz=869525000)
    assert chip.log[2:4] == [H("c0 00"), H("80 00")]  # NSS wakes it, then BUSY is low
    assert H("86") + frf_bytes(869525000) in chip.log


def test_send_and_recv_wait_for_the_chip(clock):
    radio, chip = make()
    chip.on_tx = 0x0001
    assert radio.send(b"up", 100, 30) == radio.done_us
    chip.on_tx = 0
    with pytest.raises(drv.RadioTimeout) as e:
        radio.send(b"up", 100)
    assert str(e.value) == "sx126x: no TxDone within 100 ms"
    chip.buffer[0:4] = b"down"
    chip.rx, chip.pkt, chip.on_rx = (4, 0), (100, 0x28, 100), 0x0012
    assert radio.recv(1000)[:3] == (b"down", -50, 40)
    assert chip.log[-1] == H("80 00")  # left in standby
    chip.on_rx = 0
    start = clock.us
    assert radio.recv(3000, 200) is None  # no header by 200 ms: gives up
    assert 200000 <= clock.us - start < 300000


def test_the_interface_matches_the_sx127x_driver():
    names = ["chip", "configure", "standby", "sleep", "symbol_ms", "time_on_air_ms", "load",
             "start_send", "start_recv", "header_seen", "poll", "sending", "receiving",
             "send", "recv"]
    for name in names:
        assert hasattr(drv.SX126x, name), name
    assert issubclass(drv.SX126x, drv.Radio) and drv.RadioError is radio_globals["RadioError"]
    assert (drv.TX_DONE, drv.RX_DONE, drv.RX_CRC_ERROR) == (1, 2, 3)
    assert issubclass(drv.RadioTimeout, drv.RadioError) and issubclass(drv.RadioError, OSError)


MPY_SCRIPT = r'''
import gc, json, sys
gc.collect()
before = gc.mem_alloc()
from net import sx126x
gc.collect()
imported = gc.mem_alloc()
chip, cs, reset, busy, dio1 = board()
chip.log = cs.history = busy.history = dio1.history = reset.history = None
gc.collect()
a = gc.mem_alloc()
r = sx126x.SX126x(chip, cs, reset, busy, dio1)
gc.collect()
obj = gc.mem_alloc() - a
chip, cs, reset, busy, dio1 = board()
r = sx126x.SX126x(chip, cs, reset, busy, dio1)
chip.on_tx = 1
r.send(b"hello", 100, 30)
chip.buffer[0:4] = b"down"
chip.rx, chip.pkt, chip.on_rx = (4, 0), (191, 0xE6, 200), 0x12
p = r.recv(1000)
r.configure(invert_iq=True, freq_hz=869525000, sf=12)
r.sleep()
r.standby()
gc.collect()
a = gc.mem_alloc()
for i in range(20):
    r.poll()
quiet = gc.mem_alloc() - a
chip.quiet = True
cs.history = None
chip.irq = 1
r._flag = True
gc.collect()
a = gc.mem_alloc()
event = r.poll()
txdone = gc.mem_alloc() - a
assert event == 1 and chip.irq == 0
print(json.dumps({"log": [c.hex() for c in chip.log], "packet": [p[0].hex(), p[1], p[2]],
                  "import": imported - before, "object": obj,
                  "quiet": quiet, "txdone": txdone}))
'''


def test_the_driver_runs_the_same_on_micropython_within_a_small_heap(tmp_path, clock):
    lib = tmp_path / "lib"
    for name in ("__init__", "radio", "sx126x"):  # compiled, as a board carries them
        mpybuild.compile_file(DRIVER.parent / (name + ".py"), lib / "net" / (name + ".py"))
    script = tmp_path / "main.py"
    script.write_text(FAKE + MPY_SCRIPT)
    run = mpybuild.run(script, [lib], heap="96K", timeout=60)
    assert run.returncode == 0, run.stderr + run.stdout
    out = json.loads(run.stdout.strip().splitlines()[-1])
    # the same commands from the same calls on CPython
    chip, cs, reset, busy, dio1 = fake["board"]()
    r = drv.SX126x(chip, cs, reset, busy, dio1)
    chip.on_tx = 1
    r.send(b"hello", 100, 30)
    chip.buffer[0:4] = b"down"
    chip.rx, chip.pkt, chip.on_rx = (4, 0), (191, 0xE6, 200), 0x12
    p = r.recv(1000)
    r.configure(invert_iq=True, freq_hz=869525000, sf=12)
    r.sleep()
    r.standby()
    assert r.poll() is None
    assert out["log"] == [c.hex() for c in chip.log]
    assert out["packet"] == [b"down".hex(), -96, -26] == [p[0].hex(), p[1], p[2]]
    assert out["quiet"] == 0 and out["txdone"] == 0  # nothing allocated in poll()
    # The heap the radio costs a node: net/radio.py and this driver as .mpy (about 12.3 KB
    # imported first thing, 2.4 KB more than net/sx127x.py; here the string pool grows a
    # piece more), and the driver object with its buffers.
    assert out["import"] < 14500 and out["object"] < 2000, out
