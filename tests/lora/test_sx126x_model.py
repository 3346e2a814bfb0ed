"""The SX126x model against command-level SPI sequences written from the Semtech SX1261/2
datasheet (wait for BUSY low, NSS low, opcode and parameters, NSS high), not via any driver."""
import pytest

from hil_tests.virtual.air import Air
from hil_tests.virtual.models import sx126x as chip
from hil_tests.virtual.models import sx127x
from protocol import airtime
from tests.lora.test_sx127x_model import Host as Host127x
from tests.lora.test_sx127x_model import send as send127x

FREQ_HZ = 868100000
LORA_IRQS = (chip.IRQ_TX_DONE | chip.IRQ_RX_DONE | chip.IRQ_PREAMBLE_DETECTED
             | chip.IRQ_HEADER_VALID | chip.IRQ_CRC_ERR | chip.IRQ_TIMEOUT)


class Host:
    """An MCU's view of the chip: NSS, NRESET, BUSY and DIO1 pins and the SPI bus."""

    def __init__(self, radio):
        self.radio = radio
        self.vt = 0

    def busy(self):
        return self.radio.busy_pin.read(self.vt)

    def dio1(self):
        return self.radio.dio1_pin.read(self.vt)

    def wait_busy(self, limit_us=20000):
        """Section 8.3.1: the host waits for BUSY low before a transaction."""
        waited = 0
        while self.busy():
            self.vt += 1
            waited += 1
            assert waited < limit_us, "BUSY stayed high"
        return waited

    def xfer(self, data, wait=True):
        if wait:
            self.wait_busy()
        self.radio.cs_pin.write(0, self.vt)
        out = self.radio.transfer(bytes(data), self.vt)
        self.radio.cs_pin.write(1, self.vt)
        return out

    def cmd(self, op, *params, read=0):
        return self.xfer([op, *params] + [0] * read)

    def status(self):
        return self.cmd(chip.OP_GET_STATUS, read=1)[1]

    def read_register(self, addr, n=1):
        return bytes(self.cmd(chip.OP_READ_REGISTER, addr >> 8, addr & 0xFF, read=1 + n)[4:])

    def irq(self):
        out = self.cmd(chip.OP_GET_IRQ_STATUS, read=3)
        return (out[2] << 8) | out[3]

    def lora(self, *, sf=9, length=0, preamble=8, crc=1, invert_iq=0, freq_hz=FREQ_HZ,
             dio1=chip.IRQ_TX_DONE | chip.IRQ_RX_DONE):
        """The configuration sequence of datasheet section 14.2/14.3."""
        self.cmd(chip.OP_SET_STANDBY, 0x00)
        self.cmd(chip.OP_SET_PACKET_TYPE, chip.PACKET_TYPE_LORA)
        rf = freq_hz * (1 << 25) // chip.FXOSC
        self.cmd(chip.OP_SET_RF_FREQUENCY, *rf.to_bytes(4, "big"))
        self.cmd(chip.OP_SET_MODULATION_PARAMS, sf, 0x04, 0x01, 0x00)   # 125 kHz, 4/5
        self.cmd(chip.OP_SET_PACKET_PARAMS, preamble >> 8, preamble & 0xFF, 0x00, length, crc,
                 invert_iq)
        self.cmd(chip.OP_SET_BUFFER_BASE_ADDRESS, 0x00, 0x00)
        self.cmd(chip.OP_SET_DIO_IRQ_PARAMS, LORA_IRQS >> 8, LORA_IRQS & 0xFF,
                 dio1 >> 8, dio1 & 0xFF, 0, 0, 0, 0)

    def send(self, payload, timeout=0, **lora):
        self.lora(length=len(payload), **lora)
        self.cmd(chip.OP_WRITE_BUFFER, 0x00, *payload)
        self.cmd(chip.OP_SET_TX, *timeout.to_bytes(3, "big"))


def mode(status):
    return (status >> 4) & 0x07


def cmd_status(status):
    return (status >> 1) & 0x07


@pytest.fixture
def host():
    return Host(chip.SX126x(bus="spi1", cs=15, busy=27, dio1=26, reset=4))


def test_get_status_after_power_on_is_stdby_rc(host):
    out = host.cmd(chip.OP_GET_STATUS, read=1)
    assert out[0] == 0x00                       # RFU while the opcode goes in
    assert mode(out[1]) == chip.STDBY_RC
    assert cmd_status(out[1]) not in (chip.CMD_PROCESSING_ERROR, chip.CMD_EXEC_FAILURE)


def test_read_register_gives_status_then_the_lora_sync_word_reset_value(host):
    out = host.cmd(chip.OP_READ_REGISTER, 0x07, 0x40, read=3)
    assert mode(out[3]) == chip.STDBY_RC        # the NOP after the address: status
    assert out[4:] == bytes([0x14, 0x24])


def test_write_register_is_read_back_and_other_addresses_are_accepted(host):
    host.cmd(chip.OP_WRITE_REGISTER, 0x07, 0x40, 0x34, 0x44)
    host.cmd(chip.OP_WRITE_REGISTER, 0x08, 0xD8, 0x1E)       # TX clamp (erratum)
    host.cmd(chip.OP_WRITE_REGISTER, 0x07, 0x36, 0x09)       # IQ polarity
    assert host.read_register(0x0740, 2) == bytes([0x34, 0x44])
    assert host.read_register(0x08D8) == bytes([0x1E])
    assert cmd_status(host.status()) == chip.CMD_OK


def test_write_and_read_buffer_at_an_offset_with_a_status_byte_first(host):
    host.cmd(chip.OP_WRITE_BUFFER, 0xFE, 1, 2, 3)            # wraps round the 256 bytes
    out = host.cmd(chip.OP_READ_BUFFER, 0xFE, read=4)
    assert mode(out[2]) == chip.STDBY_RC
    assert list(out[3:]) == [1, 2, 3]
    assert host.cmd(chip.OP_READ_BUFFER, 0x00, read=2)[3] == 3


def test_unknown_opcode_or_missing_parameters_is_a_command_processing_error(host):
    host.cmd(0x55)
    assert cmd_status(host.status()) == chip.CMD_PROCESSING_ERROR
    assert cmd_status(host.status()) == chip.CMD_PROCESSING_ERROR  # reads keep it
    host.cmd(chip.OP_SET_BUFFER_BASE_ADDRESS, 0, 0)           # a command that executes
    assert cmd_status(host.status()) == chip.CMD_OK
    host.cmd(chip.OP_SET_RF_FREQUENCY, 0x36, 0x41)           # needs 4 bytes
    assert cmd_status(host.status()) == chip.CMD_PROCESSING_ERROR


def test_busy_is_high_after_each_command_until_it_is_processed(host):
    host.cmd(chip.OP_SET_PACKET_TYPE, chip.PACKET_TYPE_LORA)
    assert host.busy() == 1
    assert host.wait_busy() == chip.COMMAND_BUSY_US
    host.cmd(chip.OP_SET_STANDBY, 0x01)                       # STDBY_RC -> STDBY_XOSC
    assert host.wait_busy() == chip.TO_XOSC_US
    assert mode(host.status()) == chip.STDBY_XOSC


def test_transaction_while_busy_is_ignored(host):
    host.cmd(chip.OP_WRITE_REGISTER, 0x07, 0x40, 0x34, 0x44)
    out = host.xfer([chip.OP_WRITE_REGISTER, 0x07, 0x40, 0x56, 0x66], wait=False)
    assert out == bytes(5)
    assert host.read_register(0x0740) == bytes([0x34])
    assert "BUSY high" in host.radio.errors[-1]


def test_sleep_holds_busy_high_until_nss_falls_and_warm_start_keeps_the_config(host):
    host.cmd(chip.OP_WRITE_REGISTER, 0x07, 0x40, 0x34, 0x44)
    host.cmd(chip.OP_SET_SLEEP, 0x04)                         # warm start
    host.vt += 10 ** 6
    assert host.busy() == 1 and host.radio.mode == chip.SLEEP
    host.radio.cs_pin.write(0, host.vt)                       # the falling NSS wakes it
    host.radio.cs_pin.write(1, host.vt)
    assert host.wait_busy() == chip.WAKE_WARM_US
    assert mode(host.status()) == chip.STDBY_RC
    assert host.read_register(0x0740, 2) == bytes([0x34, 0x44])


def test_cold_sleep_loses_the_config_and_wakes_in_3_5_ms(host):
    host.cmd(chip.OP_SET_PACKET_TYPE, chip.PACKET_TYPE_LORA)
    host.cmd(chip.OP_WRITE_REGISTER, 0x07, 0x40, 0x34, 0x44)
    host.cmd(chip.OP_SET_SLEEP, 0x00)
    host.vt += 1000
    host.radio.cs_pin.write(0, host.vt)
    assert host.wait_busy() == chip.WAKE_COLD_US              # NSS still low: SPI then
    host.radio.cs_pin.write(1, host.vt)
    assert host.read_register(0x0740, 2) == bytes([0x14, 0x24])
    assert host.cmd(chip.OP_GET_PACKET_TYPE, read=2)[2] == chip.PACKET_TYPE_GFSK


def test_sleep_is_refused_outside_standby(host):
    host.send(b"x", timeout=0)
    host.cmd(chip.OP_SET_SLEEP, 0x04)
    status = host.status()
    assert mode(status) == chip.TX and cmd_status(status) == chip.CMD_EXEC_FAILURE


def test_tx_puts_the_frame_on_air_with_its_modulation_and_raises_txdone_on_dio1():
    air = Air(max_wait=2)
    host = Host(chip.SX126x(air=air, name="node", position=(0.0, 0.0)))
    host.cmd(chip.OP_SET_TX_PARAMS, 22, 0x04)
    host.send(b"hello lora", sf=9, preamble=12)
    t0 = host.vt
    assert host.wait_busy() == chip.TO_TX_US[chip.STDBY_RC]  # BUSY falls as TX starts
    frame = air.frames[0]
    assert frame.payload == b"hello lora"
    assert abs(frame.freq_hz - FREQ_HZ) < 2
    assert (frame.sf, frame.bw_khz, frame.cr, frame.preamble) == (9, 125, 1, 12)
    assert frame.crc and not frame.implicit and not frame.iq_inverted
    assert frame.sync_word == 0x12 and frame.power_dbm == 22
    assert frame.start == t0 + chip.TO_TX_US[chip.STDBY_RC]
    expected = airtime.time_on_air_ms(10, 9, 125, 1, 12) * 1000
    assert frame.end - frame.start == pytest.approx(expected, abs=1)
    assert mode(host.status()) == chip.TX
    host.vt = frame.end - 1
    assert host.dio1() == 0
    host.vt = frame.end
    assert host.dio1() == 1
    assert host.irq() == chip.IRQ_TX_DONE
    status = host.status()
    assert mode(status) == chip.STDBY_RC and cmd_status(status) == chip.CMD_TX_DONE
    host.cmd(chip.OP_CLEAR_IRQ_STATUS, 0x03, 0xFF)
    assert host.irq() == 0 and host.dio1() == 0
    air.leave(host.radio)


def test_txdone_stays_off_dio1_unless_mapped_and_off_the_register_unless_unmasked(host):
    host.send(b"x", dio1=0)
    host.vt = host.radio.sent[0].end
    assert host.dio1() == 0 and host.irq() == chip.IRQ_TX_DONE
    host.cmd(chip.OP_SET_DIO_IRQ_PARAMS, 0, 0, 0, 0, 0, 0, 0, 0)
    host.cmd(chip.OP_CLEAR_IRQ_STATUS, 0xFF, 0xFF)
    host.cmd(chip.OP_SET_TX, 0, 0, 0)
    host.vt = host.radio.sent[1].end
    assert host.irq() == 0 and mode(host.status()) == chip.STDBY_RC


def test_tx_without_lora_packet_type_fails_to_execute(host):
    host.cmd(chip.OP_WRITE_BUFFER, 0, 1, 2)
    host.cmd(chip.OP_SET_TX, 0, 0, 0)                         # still GFSK after reset
    status = host.status()
    assert cmd_status(status) == chip.CMD_EXEC_FAILURE and mode(status) == chip.STDBY_RC
    assert not host.radio.sent


def listen(host, timeout=chip.RX_CONTINUOUS, **lora):
    host.lora(**lora)
    host.cmd(chip.OP_SET_RX, *timeout.to_bytes(3, "big"))


def test_frame_from_an_sx127x_on_the_same_air_is_received():
    air = Air(max_wait=2)
    node = Host(chip.SX126x(air=air, name="sx1262", position=(0.0, 0.0)))
    gw = Host127x(sx127x.SX127x(air=air, name="rfm95", position=(1000.0, 0.0)))
    listen(node, timeout=0)                                   # single RX, no timeout
    gw.vt = 5000
    gw.lora_standby(freq_hz=FREQ_HZ, sf=9)
    send127x(gw, b"from an sx1276")
    frame = air.frames[0]
    air.leave(gw.radio)                                       # its clock no longer counts
    node.vt = frame.header_time() - 1
    assert node.irq() == chip.IRQ_PREAMBLE_DETECTED
    node.vt = frame.header_time()
    assert node.irq() & chip.IRQ_HEADER_VALID
    assert node.dio1() == 0
    node.vt = frame.end
    assert node.dio1() == 1
    irq = node.irq()
    assert irq & chip.IRQ_RX_DONE and not irq & chip.IRQ_CRC_ERR
    status = node.status()
    assert mode(status) == chip.STDBY_RC and cmd_status(status) == chip.CMD_DATA_AVAILABLE
    out = node.cmd(chip.OP_GET_RX_BUFFER_STATUS, read=3)
    length, start = out[2], out[3]
    assert (length, start) == (14, 0)
    assert bytes(node.cmd(chip.OP_READ_BUFFER, start, read=1 + length)[3:]) == b"from an sx1276"
    fate = air.fates(frame.id)["sx1262"]
    assert fate.status == "delivered"
    out = node.cmd(chip.OP_GET_PACKET_STATUS, read=4)
    rssi_pkt, snr_raw, signal_rssi = -out[2] / 2, out[3], -out[4] / 2
    snr = (snr_raw - 256 if snr_raw > 127 else snr_raw) / 4
    assert snr == pytest.approx(fate.snr, abs=0.125)
    assert signal_rssi == pytest.approx(fate.rssi, abs=0.25)
    assert signal_rssi <= rssi_pkt + 0.25                     # signal + noise >= signal
    air.leave(node.radio)


def test_sx127x_hears_an_sx126x_frame():
    air = Air(max_wait=2)
    node = Host(chip.SX126x(air=air, name="sx1262", position=(0.0, 0.0)))
    gw = Host127x(sx127x.SX127x(air=air, name="rfm95", position=(500.0, 0.0)))
    gw.lora_standby(freq_hz=FREQ_HZ, sf=9)
    gw.write(sx127x.REG_OP_MODE, 0x85)                        # RXCONTINUOUS
    node.send(b"uplink", sf=9)
    frame = air.frames[0]
    air.leave(node.radio)
    gw.vt = frame.end
    assert gw.read(sx127x.REG_IRQ_FLAGS) & sx127x.IRQ_RX_DONE
    n = gw.read(sx127x.REG_RX_NB_BYTES)
    gw.write(sx127x.REG_FIFO_ADDR_PTR, gw.read(sx127x.REG_FIFO_RX_CURRENT))
    assert bytes(gw.read(sx127x.REG_FIFO, n)) == b"uplink"
    air.leave(gw.radio)


def test_corrupt_frame_raises_crc_err_and_continuous_rx_stays(host):
    listen(host)
    host.wait_busy()
    frame = host.radio.inject(b"garbled", corrupt=True, start=host.vt + 100)
    host.vt = frame.end
    irq = host.irq()
    assert irq & chip.IRQ_RX_DONE and irq & chip.IRQ_CRC_ERR
    assert mode(host.status()) == chip.RX
    out = host.cmd(chip.OP_GET_STATS, read=7)
    assert (out[2] << 8 | out[3], out[4] << 8 | out[5]) == (1, 1)


def test_inverted_iq_frame_is_not_heard_by_a_standard_receiver(host):
    listen(host, timeout=640)                                 # 640 x 15.625 us = 10 ms
    host.wait_busy()
    host.radio.inject(b"downlink", iq_inverted=True, start=host.vt + 100)
    host.vt += 200000
    assert host.irq() == chip.IRQ_TIMEOUT
    assert mode(host.status()) == chip.STDBY_RC


def test_inverted_iq_receiver_hears_an_inverted_frame(host):
    host.cmd(chip.OP_WRITE_REGISTER, 0x07, 0x36, 0x09)        # erratum 15.4: bit 2 cleared
    listen(host, invert_iq=1)
    host.wait_busy()
    frame = host.radio.inject(b"downlink", iq_inverted=True, start=host.vt + 100)
    host.vt = frame.end
    assert host.irq() & chip.IRQ_RX_DONE
    assert not any("erratum" in e for e in host.radio.errors)


def test_single_rx_times_out_after_its_timeout_and_falls_back_to_standby(host):
    listen(host, timeout=640)
    t0 = host.vt
    ready = t0 + chip.TO_RX_US[chip.STDBY_RC]
    host.vt = ready + 10000 - 20
    assert mode(host.status()) == chip.RX and host.irq() == 0
    host.vt = ready + 10000
    assert host.irq() == chip.IRQ_TIMEOUT
    assert mode(host.status()) == chip.STDBY_RC


def test_sync_word_mismatch_is_not_heard(host):
    host.cmd(chip.OP_WRITE_REGISTER, 0x07, 0x40, 0x34, 0x44)  # public network: 0x34
    listen(host, timeout=640)
    host.wait_busy()
    host.radio.inject(b"private", start=host.vt + 100, sync_word=0x12)
    host.vt += 200000
    assert host.irq() == chip.IRQ_TIMEOUT


def test_nreset_pulse_restores_everything_and_busy_falls_after_start_up(host):
    host.cmd(chip.OP_WRITE_REGISTER, 0x07, 0x40, 0x34, 0x44)
    host.wait_busy()
    host.radio.reset_pin.write(0, host.vt)
    host.radio.reset_pin.write(1, host.vt + 50)               # too short: ignored
    assert host.read_register(0x0740) == bytes([0x34])
    host.wait_busy()
    host.radio.reset_pin.write(0, host.vt)
    assert host.busy() == 1
    host.vt += 200
    host.radio.reset_pin.write(1, host.vt)
    assert host.wait_busy() == chip.RESET_READY_US
    assert mode(host.status()) == chip.STDBY_RC
    assert host.read_register(0x0740, 2) == bytes([0x14, 0x24])


def test_absent_chip_reads_zero_and_busy_low(host):
    host.radio.fault = "nack"
    assert host.busy() == 0
    assert host.cmd(chip.OP_GET_STATUS, read=1) == bytes(2)


def test_stuck_chip_never_drops_busy(host):
    host.radio.fault = "stuck"
    host.vt = 10 ** 7
    assert host.busy() == 1
    with pytest.raises(AssertionError, match="BUSY stayed high"):
        host.wait_busy(limit_us=5000)


def test_no_txdone_fault_stays_in_tx_until_the_tx_timeout(host):
    host.radio.fault = "no_txdone"
    host.send(b"x", timeout=6400)                             # 100 ms
    t0 = host.vt
    host.vt = t0 + 99000
    assert host.irq() == 0 and mode(host.status()) == chip.TX
    host.vt = t0 + 100000
    assert host.irq() == chip.IRQ_TIMEOUT
    assert mode(host.status()) == chip.STDBY_RC


def test_device_errors_read_zero_and_clear(host):
    out = host.cmd(chip.OP_GET_DEVICE_ERRORS, read=3)
    assert out[2:] == bytes(2)
    host.cmd(chip.OP_CLEAR_DEVICE_ERRORS, 0, 0)
    assert cmd_status(host.status()) == chip.CMD_OK


def test_calibrate_holds_busy_3_5_ms(host):
    host.cmd(chip.OP_CALIBRATE, 0x7F)
    assert host.wait_busy() == chip.CALIBRATE_US


def test_cad_detects_a_frame_on_air_and_returns_to_standby(host):
    host.lora()
    cad = chip.IRQ_CAD_DONE | chip.IRQ_CAD_DETECTED
    host.cmd(chip.OP_SET_DIO_IRQ_PARAMS, cad >> 8, cad & 0xFF, cad >> 8, cad & 0xFF, 0, 0, 0, 0)
    host.cmd(chip.OP_SET_CAD_PARAMS, 0x02, 22, 10, 0x00, 0, 0, 0)   # 4 symbols, CAD_ONLY
    host.radio.inject(b"busy channel", start=host.vt)
    host.cmd(chip.OP_SET_CAD)
    host.vt += 4 * airtime.symbol_time_ms(9, 125) * 1000 + 200
    assert host.irq() == cad and host.dio1() == 1
    assert mode(host.status()) == chip.STDBY_RC
