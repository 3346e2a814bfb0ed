"""The SX127x model against register-level SPI sequences written from the Semtech datasheet
(NSS low, address byte with bit 7 for a write, burst data, NSS high), not via any driver."""
import pytest

from hil_tests.virtual.models import sx127x as chip
from protocol import airtime


class Host:
    """An MCU's view of the chip: NSS, NRESET and DIO0 pins and the SPI bus."""

    def __init__(self, radio):
        self.radio = radio
        self.vt = 0

    def _xfer(self, data):
        self.radio.cs_pin.write(0, self.vt)
        out = self.radio.transfer(bytes(data), self.vt)
        self.radio.cs_pin.write(1, self.vt)
        return out

    def write(self, addr, *values):
        self._xfer([0x80 | addr, *values])

    def read(self, addr, n=1):
        out = self._xfer([addr] + [0] * n)[1:]
        return out[0] if n == 1 else out

    def dio0(self):
        return self.radio.dio0_pin.read(self.vt)

    def lora_standby(self, freq_hz=868100000, sf=9):
        self.write(chip.REG_OP_MODE, 0x00)           # FSK sleep
        self.write(chip.REG_OP_MODE, 0x80)           # LoRa sleep
        frf = freq_hz * (1 << 19) // chip.FXOSC
        self.write(chip.REG_FRF_MSB, frf >> 16, (frf >> 8) & 0xFF, frf & 0xFF)  # burst
        self.write(chip.REG_MODEM_CONFIG1, 0x72)     # 125 kHz, 4/5, explicit header
        self.write(chip.REG_MODEM_CONFIG2, (sf << 4) | 0x04)  # CRC on
        self.write(chip.REG_OP_MODE, 0x81)           # LoRa standby


@pytest.fixture
def host():
    return Host(chip.SX127x(bus="spi1", cs=15, dio0=35, reset=4))


def test_version_register_reads_0x12(host):
    assert host.read(chip.REG_VERSION) == 0x12


def test_absent_chip_reads_version_zero(host):
    host.radio.fault = "nack"
    assert host.read(chip.REG_VERSION) == 0x00


def test_bytes_clocked_while_nss_high_reach_no_register(host):
    host.radio.transfer(bytes([0x80 | chip.REG_SYNC_WORD, 0x34]), 0)
    assert host.read(chip.REG_SYNC_WORD) == 0x12


def test_burst_write_and_read_auto_increment_the_address(host):
    host.write(chip.REG_OP_MODE, 0x80)
    host.write(chip.REG_FRF_MSB, 0xD9, 0x06, 0x66)
    assert list(host.read(chip.REG_FRF_MSB, 3)) == [0xD9, 0x06, 0x66]


def test_long_range_mode_only_changes_in_sleep(host):
    assert host.read(chip.REG_OP_MODE) == 0x09       # reset: FSK, LF mode, standby
    host.write(chip.REG_OP_MODE, 0x81)                # LoRa while in standby: refused
    assert host.read(chip.REG_OP_MODE) & 0x80 == 0
    host.write(chip.REG_OP_MODE, 0x00)
    host.write(chip.REG_OP_MODE, 0x80)
    host.write(chip.REG_OP_MODE, 0x81)
    assert host.read(chip.REG_OP_MODE) == 0x81


def test_fifo_burst_moves_the_address_pointer_not_the_register_address(host):
    host.lora_standby()
    host.write(chip.REG_FIFO_ADDR_PTR, 0x80)
    host.write(chip.REG_FIFO, 1, 2, 3, 4)
    assert host.read(chip.REG_FIFO_ADDR_PTR) == 0x84
    host.write(chip.REG_FIFO_ADDR_PTR, 0x80)
    assert list(host.read(chip.REG_FIFO, 4)) == [1, 2, 3, 4]


def test_fifo_is_cleared_and_closed_in_sleep(host):
    host.lora_standby()
    host.write(chip.REG_FIFO_ADDR_PTR, 0x00)
    host.write(chip.REG_FIFO, 0xAA)
    host.write(chip.REG_OP_MODE, 0x80)                # sleep
    host.write(chip.REG_FIFO_ADDR_PTR, 0x00)
    host.write(chip.REG_FIFO, 0xBB)                   # ignored
    host.write(chip.REG_OP_MODE, 0x81)
    host.write(chip.REG_FIFO_ADDR_PTR, 0x00)
    assert host.read(chip.REG_FIFO) == 0x00


def send(host, payload):
    host.write(chip.REG_FIFO_ADDR_PTR, host.read(chip.REG_FIFO_TX_BASE))
    host.write(chip.REG_FIFO, *payload)
    host.write(chip.REG_PAYLOAD_LENGTH, len(payload))
    host.write(chip.REG_DIO_MAPPING1, 0x40)           # DIO0 = TxDone
    host.write(chip.REG_OP_MODE, 0x83)


def test_tx_takes_the_datasheet_airtime_then_raises_txdone_on_dio0_and_returns_to_standby(host):
    host.lora_standby(sf=9)
    send(host, b"hello lora")
    airtime_us = airtime.time_on_air_ms(10, 9, 125, 1) * 1000
    host.vt = int(airtime_us) - 1000
    assert host.read(chip.REG_OP_MODE) == 0x83 and host.dio0() == 0
    host.vt = int(airtime_us) + 1
    assert host.dio0() == 1
    assert host.read(chip.REG_IRQ_FLAGS) == chip.IRQ_TX_DONE
    assert host.read(chip.REG_OP_MODE) == 0x81
    frame = host.radio.sent[0]
    assert frame.payload == b"hello lora" and frame.sf == 9 and frame.freq_hz == 868099975


def test_irq_flag_clears_when_one_is_written_and_dio0_falls(host):
    host.lora_standby()
    send(host, b"x")
    host.vt = 10 ** 6
    assert host.dio0() == 1
    host.write(chip.REG_IRQ_FLAGS, 0xFF)
    assert host.read(chip.REG_IRQ_FLAGS) == 0 and host.dio0() == 0


def test_masked_irq_never_rises(host):
    host.lora_standby()
    host.write(chip.REG_IRQ_FLAGS_MASK, chip.IRQ_TX_DONE)
    send(host, b"x")
    host.vt = 10 ** 6
    assert host.read(chip.REG_IRQ_FLAGS) == 0 and host.read(chip.REG_OP_MODE) == 0x81


def test_tx_from_sleep_or_without_payload_is_refused(host):
    host.lora_standby()
    host.write(chip.REG_OP_MODE, 0x80)
    host.write(chip.REG_OP_MODE, 0x83)
    assert host.read(chip.REG_OP_MODE) == 0x80 and not host.radio.sent
    host.write(chip.REG_OP_MODE, 0x81)
    host.write(chip.REG_PAYLOAD_LENGTH, 0)
    host.write(chip.REG_OP_MODE, 0x83)
    assert host.read(chip.REG_OP_MODE) == 0x81 and not host.radio.sent


def test_no_txdone_fault_leaves_the_chip_in_tx(host):
    host.radio.fault = "no_txdone"
    host.lora_standby()
    send(host, b"x")
    host.vt = 10 ** 7
    assert host.read(chip.REG_OP_MODE) == 0x83 and host.dio0() == 0


def test_rx_single_puts_the_packet_in_the_fifo_with_rssi_and_snr_registers(host):
    host.lora_standby()
    host.write(chip.REG_DIO_MAPPING1, 0x00)           # DIO0 = RxDone
    host.write(chip.REG_FIFO_RX_BASE, 0x00)
    host.vt = 1000
    host.write(chip.REG_OP_MODE, 0x86)                # RXSINGLE
    frame = host.radio.inject(b"downlink!", rssi=-100.0, snr=-5.25, start=2000)
    host.vt = frame.end - 1
    assert host.dio0() == 0
    host.vt = frame.end
    assert host.dio0() == 1
    flags = host.read(chip.REG_IRQ_FLAGS)
    assert flags & chip.IRQ_RX_DONE and flags & chip.IRQ_VALID_HEADER
    assert not flags & chip.IRQ_PAYLOAD_CRC_ERROR
    n = host.read(chip.REG_RX_NB_BYTES)
    host.write(chip.REG_FIFO_ADDR_PTR, host.read(chip.REG_FIFO_RX_CURRENT))
    assert bytes(host.read(chip.REG_FIFO, n)) == b"downlink!"
    snr_raw = host.read(chip.REG_PKT_SNR)
    snr = (snr_raw - 256 if snr_raw > 127 else snr_raw) / 4
    assert snr == -5.25
    rssi = -157 + host.read(chip.REG_PKT_RSSI) + snr  # datasheet 5.5.5, SNR < 0
    assert abs(rssi - -100.0) <= 0.5
    assert host.read(chip.REG_OP_MODE) == 0x81        # RXSINGLE ends in standby
    assert host.read(chip.REG_HOP_CHANNEL) & 0x40     # the header said CRC on


def test_rx_single_times_out_after_symb_timeout_symbols(host):
    host.lora_standby(sf=9)
    host.write(chip.REG_SYMB_TIMEOUT_LSB, 10)
    host.write(chip.REG_OP_MODE, 0x86)
    symbol_us = airtime.symbol_time_ms(9, 125) * 1000
    host.vt = int(10 * symbol_us) - 10
    assert host.read(chip.REG_IRQ_FLAGS) == 0
    host.vt = int(10 * symbol_us) + 10
    assert host.read(chip.REG_IRQ_FLAGS) == chip.IRQ_RX_TIMEOUT
    assert host.read(chip.REG_OP_MODE) == 0x81


def test_corrupted_packet_raises_payload_crc_error(host):
    host.lora_standby()
    host.write(chip.REG_OP_MODE, 0x85)                # RXCONTINUOUS
    frame = host.radio.inject(b"garbled", corrupt=True, start=0)
    host.vt = frame.end
    flags = host.read(chip.REG_IRQ_FLAGS)
    assert flags & chip.IRQ_RX_DONE and flags & chip.IRQ_PAYLOAD_CRC_ERROR
    assert host.read(chip.REG_OP_MODE) == 0x85        # continuous RX stays


def test_rx_continuous_writes_consecutive_packets_after_each_other(host):
    host.lora_standby()
    host.write(chip.REG_OP_MODE, 0x85)
    first = host.radio.inject(b"one", start=0)
    second = host.radio.inject(b"two", start=first.end + 1000)
    host.vt = first.end
    host.read(chip.REG_IRQ_FLAGS)
    assert host.read(chip.REG_FIFO_RX_CURRENT) == 0
    host.write(chip.REG_IRQ_FLAGS, 0xFF)
    host.vt = second.end
    assert host.read(chip.REG_IRQ_FLAGS) & chip.IRQ_RX_DONE
    assert host.read(chip.REG_FIFO_RX_CURRENT) == 3
    assert host.read(chip.REG_FIFO_RX_BYTE_ADDR) == 6


def test_reset_pulse_restores_registers_and_the_chip_answers_5_ms_later(host):
    host.write(chip.REG_SYNC_WORD, 0x34)
    host.radio.reset_pin.write(0, 0)
    host.radio.reset_pin.write(1, 200)
    host.vt = 4000
    assert host.read(chip.REG_VERSION) == 0x00        # not ready yet
    host.vt = 5300
    assert host.read(chip.REG_VERSION) == 0x12
    assert host.read(chip.REG_SYNC_WORD) == 0x12


def test_pa_boost_power_follows_output_power(host):
    host.lora_standby()
    host.write(chip.REG_PA_CONFIG, 0x80 | 12)         # PA_BOOST, 17 - (15 - 12) = 14 dBm
    send(host, b"p")
    assert host.radio.sent[0].power_dbm == 14
