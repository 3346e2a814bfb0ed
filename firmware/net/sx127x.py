# Semtech SX1276/77/78 LoRa transceiver (and modules built on it: HopeRF RFM95W/96W/98W),
# register level over SPI (Semtech SX1276/77/78/79 datasheet, rev. 7, May 2020).
#
# A non-blocking core (start_send / start_recv / poll); the waits over it (sending,
# receiving and their blocking wrappers) are net/radio.py's. The DIO0 interrupt handler
# only notes the time and sets a flag; poll() reads the chip's IRQ flags when DIO0 is up.
#
# Each register access is one SPI transaction (chip select low, address byte with the
# write bit, data, chip select high: datasheet 4.3), done as a single write_readinto.
from micropython import const
import time

from net.radio import (BANDWIDTHS_HZ, RX_CRC_ERROR, RX_DONE, TX_DONE, Radio,  # noqa: F401
                       RadioError, RadioTimeout)

# Registers, LoRa mode (datasheet 6.4, table 41).
_FIFO = const(0x00)
_OP_MODE = const(0x01)            # 6.4: bit 7 LongRangeMode, bit 3 LowFrequencyModeOn, 2-0 Mode
_FRF_MSB = const(0x06)            # 6.4: Frf(23:0) = f / Fstep, Fstep = 32 MHz / 2^19
_PA_CONFIG = const(0x09)          # 6.4: bit 7 PaSelect, 6-4 MaxPower, 3-0 OutputPower
_OCP = const(0x0B)                # 5.4.4: over-current protection, bit 5 on, 4-0 trim
_LNA = const(0x0C)                # 6.4: bits 1-0 LnaBoostHf
_FIFO_ADDR_PTR = const(0x0D)
_FIFO_TX_BASE = const(0x0E)
_FIFO_RX_BASE = const(0x0F)
_FIFO_RX_CURRENT = const(0x10)    # start of the last packet received
_IRQ_FLAGS_MASK = const(0x11)
_IRQ_FLAGS = const(0x12)          # writing 1 clears a flag
_RX_NB_BYTES = const(0x13)
_PKT_SNR = const(0x19)            # two's complement, 0.25 dB steps
_PKT_RSSI = const(0x1A)
_HOP_CHANNEL = const(0x1C)        # bit 6 CrcOnPayload: the received header announced a CRC
_MODEM_CONFIG1 = const(0x1D)      # 7-4 Bw, 3-1 CodingRate, 0 ImplicitHeaderModeOn
_MODEM_CONFIG2 = const(0x1E)      # 7-4 SpreadingFactor, 2 RxPayloadCrcOn
_PREAMBLE_MSB = const(0x20)
_PAYLOAD_LENGTH = const(0x22)
_MODEM_CONFIG3 = const(0x26)      # 3 LowDataRateOptimize, 2 AgcAutoOn
_DETECT_OPTIMIZE = const(0x31)    # 4.1.1.2: 0x05 at SF6, 0x03 otherwise
_INVERT_IQ = const(0x33)          # bit 6 InvertIQ
_HIGH_BW_OPTIMIZE1 = const(0x36)  # errata 2.1
_DETECTION_THRESHOLD = const(0x37)  # 4.1.1.2: 0x0C at SF6, 0x0A otherwise
_SYNC_WORD = const(0x39)
_HIGH_BW_OPTIMIZE2 = const(0x3A)  # errata 2.1
_INVERT_IQ2 = const(0x3B)         # set with 0x33 when I/Q are inverted (AN1200.24)
_DIO_MAPPING1 = const(0x40)       # 7-6 Dio0Mapping: 00 RxDone, 01 TxDone
_VERSION = const(0x42)
_PA_DAC = const(0x4D)             # 5.4.3: 0x87 enables +20 dBm on PA_BOOST

_CHIP_VERSION = const(0x12)       # RegVersion of every SX1276/77/78/79
_LONG_RANGE = const(0x80)
_LOW_FREQ = const(0x08)
_SLEEP = const(0x00)
_STANDBY = const(0x01)
_TX = const(0x03)
_RX_CONTINUOUS = const(0x05)
_RX_TIMEOUT = const(0x80)
_RX_DONE = const(0x40)
_CRC_ERROR = const(0x20)
_VALID_HEADER = const(0x10)
_TX_DONE = const(0x08)
_DIO0_RX_DONE = const(0x00)
_DIO0_TX_DONE = const(0x40)
_LF_MAX_HZ = const(525000000)     # 2.5: below this the LF port (RFI_LF) is used
_RSSI_HF = const(-157)            # 5.5.5
_RSSI_LF = const(-164)

PRIVATE_SYNC_WORD = const(0x12)   # 0x34 is LoRaWAN's public network

class SX127x(Radio):
    chip = "sx1276"
    tag = "sx127x"

    def __init__(self, spi, cs, reset, dio0, *, freq_hz=868100000, sf=9, bw_hz=125000, cr=5,
                 power_dbm=14, preamble=8, sync_word=PRIVATE_SYNC_WORD):
        self._spi = spi
        self._cs = cs
        self._dio0 = dio0
        self._buf = bytearray(256)   # one FIFO burst: address byte + up to 255 bytes
        self._mv = memoryview(self._buf)
        self._reg = bytearray(2)
        self._irq_us = 0
        self._flag = False
        self.packet = None          # the last poll() RX_DONE: (payload, rssi, snr_x4, ticks_us)
        self.done_us = 0            # when the last event's DIO0 edge came (time.ticks_us)
        self.on_irq = None          # also called by the DIO0 handler: an asyncio flag's set
        self._op_base = _LONG_RANGE
        cs.init(cs.OUT, value=1)
        # 7.2.2: hold NRESET low for at least 100 us, then wait 5 ms before using the chip.
        reset.init(reset.OUT, value=0)
        time.sleep_us(100)
        reset(1)
        time.sleep_ms(5)
        version = self._read(_VERSION)
        if version != _CHIP_VERSION:
            raise RadioError("sx127x: RegVersion is 0x%02x, not 0x12: no SX1276/77/78 on "
                             "this SPI bus and chip select" % version)
        # LongRangeMode can only be changed in sleep mode (6.4, RegOpMode bit 7).
        self._write(_OP_MODE, _SLEEP)
        self._write(_OP_MODE, _LONG_RANGE | _SLEEP)
        self._write(_FIFO_TX_BASE, 0)
        self._write(_FIFO_RX_BASE, 0)
        self._write(_IRQ_FLAGS_MASK, 0)
        self._write(_LNA, self._read(_LNA) | 0x03)  # LNA boost for the HF port (150% current)
        self._write(_SYNC_WORD, sync_word)
        self.configure(freq_hz=freq_hz, sf=sf, bw_hz=bw_hz, cr=cr, power_dbm=power_dbm,
                       preamble=preamble, invert_iq=False)
        self.standby()
        dio0.init(dio0.IN)
        dio0.irq(handler=self._on_irq, trigger=dio0.IRQ_RISING)

    # -------------------------------------------------------------- registers

    def _read(self, reg):
        b = self._reg
        b[0] = reg & 0x7F
        b[1] = 0
        self._cs(0)
        try:
            self._spi.write_readinto(b, b)
        finally:
            self._cs(1)
        return b[1]

    def _write(self, reg, value):
        b = self._reg
        b[0] = reg | 0x80
        b[1] = value
        self._cs(0)
        try:
            self._spi.write_readinto(b, b)
        finally:
            self._cs(1)

    def _burst(self, reg, n):
        # One transaction of n data bytes after the address: the FIFO pointer advances by
        # itself (4.1.2.3), so a whole packet moves in one go.
        mv = self._mv[:n + 1]
        mv[0] = reg
        self._cs(0)
        try:
            self._spi.write_readinto(mv, mv)
        finally:
            self._cs(1)
        return mv[1:]

    # -------------------------------------------------------------- settings

    def configure(self, *, freq_hz=None, sf=None, bw_hz=None, cr=None, power_dbm=None,
                  preamble=None, invert_iq=None):
        """Change any of the modem settings; the radio must not be sending. cr is the
        denominator of the coding rate, 5..8 for 4/5..4/8."""
        self._mode(_STANDBY)
        if freq_hz is not None:
            if not 137000000 <= freq_hz <= 1020000000:
                raise ValueError("sx127x: frequency %r Hz outside 137-1020 MHz" % (freq_hz,))
            self.freq_hz = freq_hz
            # Frf = f * 2^19 / 32e6 = f * 256 / 15625, split so it stays a small integer.
            frf = (freq_hz // 15625) * 256 + ((freq_hz % 15625) * 256 + 7812) // 15625
            self._write(_FRF_MSB, frf >> 16)
            self._write(_FRF_MSB + 1, (frf >> 8) & 0xFF)
            self._write(_FRF_MSB + 2, frf & 0xFF)
        self._modem(sf, bw_hz, cr, preamble)
        if preamble is not None:
            self._write(_PREAMBLE_MSB, preamble >> 8)
            self._write(_PREAMBLE_MSB + 1, preamble & 0xFF)
        if power_dbm is not None:
            self._power(power_dbm)
        if invert_iq is not None:
            # RegInvertIQ bit 6 inverts I/Q; RegInvertIQ2 must follow it (0x19 inverted,
            # 0x1D normal), or the receiver misses inverted packets.
            self._write(_INVERT_IQ, 0x66 if invert_iq else 0x27)
            self._write(_INVERT_IQ2, 0x19 if invert_iq else 0x1D)
            self.invert_iq = invert_iq
        bw_index = BANDWIDTHS_HZ.index(self.bw_hz)
        # 4.1.1.3: the register holds the bandwidth index, the code 1..4, explicit header.
        self._write(_MODEM_CONFIG1, (bw_index << 4) | ((self.cr - 4) << 1))
        # The payload CRC bit is in RegModemConfig2 on the SX1276 (bit 2); the datasheet's
        # LoRa chapter (4.1.1.6) names RegModemConfig1, which is where the SX1272 has it.
        self._write(_MODEM_CONFIG2, (self.sf << 4) | 0x04)
        # 4.1.1.6: low data rate optimisation is mandated once a symbol lasts 16 ms or more
        # (no bandwidth's nominal and exact values fall on either side of that line).
        ldro = (1 << self.sf) * 1000 >= 16 * self.bw_hz
        self._write(_MODEM_CONFIG3, (0x08 if ldro else 0) | 0x04)  # AGC on
        sf6 = self.sf == 6
        self._write(_DETECT_OPTIMIZE, (self._read(_DETECT_OPTIMIZE) & 0xF8) | (5 if sf6 else 3))
        self._write(_DETECTION_THRESHOLD, 0x0C if sf6 else 0x0A)
        # Errata note 2.1: sensitivity at 500 kHz needs these two registers (862-1020 MHz).
        if self.bw_hz == 500000:
            self._write(_HIGH_BW_OPTIMIZE1, 0x02)
            self._write(_HIGH_BW_OPTIMIZE2, 0x64)
        else:
            self._write(_HIGH_BW_OPTIMIZE1, 0x03)
        low = _LOW_FREQ if self.freq_hz < _LF_MAX_HZ else 0
        self._op_base = _LONG_RANGE | low

    def _power(self, dbm):
        # PA_BOOST only: RFM95W modules do not wire the RFO pin. Pout = 17 - (15 -
        # OutputPower) (5.4.2); +18..+20 dBm need the high-power DAC (5.4.3) and a higher
        # current limit.
        if not 2 <= dbm <= 20:
            raise ValueError("sx127x: power %r dBm is not 2..20 (PA_BOOST)" % (dbm,))
        if dbm > 17:
            self._write(_PA_DAC, 0x87)
            self._write(_OCP, 0x20 | 0x11)  # 140 mA: trim (140 + 30) / 10
            self._write(_PA_CONFIG, 0x80 | 0x70 | (dbm - 5))
        else:
            self._write(_PA_DAC, 0x84)
            self._write(_OCP, 0x20 | 0x0B)  # 100 mA, the reset value
            self._write(_PA_CONFIG, 0x80 | 0x70 | (dbm - 2))
        self.power_dbm = dbm

    def _mode(self, mode):
        self._write(_OP_MODE, self._op_base | mode)

    def standby(self):
        self._mode(_STANDBY)

    def sleep(self):
        self._mode(_SLEEP)

    # -------------------------------------------------------------- the poll core

    def load(self, payload):
        """Put a packet in the FIFO, ready to go: start_send() then keys up the transmitter
        with a single register write, so a timed downlink starts on time."""
        n = len(payload)
        if not 1 <= n <= 255:
            raise ValueError("sx127x: payload of %d bytes (1..255)" % n)
        self._mode(_STANDBY)
        self._write(_FIFO_ADDR_PTR, 0)
        mv = self._mv
        mv[1:n + 1] = payload
        self._burst(_FIFO | 0x80, n)
        self._write(_PAYLOAD_LENGTH, n)
        self._write(_DIO_MAPPING1, _DIO0_TX_DONE)
        self._write(_IRQ_FLAGS, 0xFF)
        self._flag = False

    def start_send(self, payload=None):
        """Transmit payload (or the packet load() put in the FIFO); poll() says TX_DONE."""
        if payload is not None:
            self.load(payload)
        self._mode(_TX)  # the chip goes back to standby by itself after TxDone (4.1.6)

    def start_recv(self):
        """Listen continuously; poll() reports each packet."""
        self._mode(_STANDBY)
        self._write(_FIFO_ADDR_PTR, 0)
        self._write(_DIO_MAPPING1, _DIO0_RX_DONE)
        self._write(_IRQ_FLAGS, 0xFF)
        self._flag = False
        self._mode(_RX_CONTINUOUS)

    def header_seen(self):
        """Whether a valid header has come in since the receiver started (a packet is
        arriving, or has arrived)."""
        return bool(self._read(_IRQ_FLAGS) & (_VALID_HEADER | _RX_DONE))

    def poll(self):
        """None, TX_DONE, RX_DONE (the packet in self.packet) or RX_CRC_ERROR."""
        if not self._flag:
            if not self._dio0.value():
                return None
            self._irq_us = time.ticks_us()  # the edge came before the handler was set
        self._flag = False
        self.done_us = self._irq_us
        flags = self._read(_IRQ_FLAGS)
        self._write(_IRQ_FLAGS, flags)
        if flags & _TX_DONE:
            return TX_DONE
        if not flags & _RX_DONE:
            return None
        snr = self._read(_PKT_SNR)
        if snr > 127:
            snr -= 256
        rssi = (_RSSI_LF if self.freq_hz < _LF_MAX_HZ else _RSSI_HF) + self._read(_PKT_RSSI)
        if snr < 0:
            rssi += snr // 4  # 5.5.5: below the noise floor the SNR adds to the RSSI
        # Explicit header: the transmitter decides about the CRC (4.1.1.6); a packet sent
        # without one cannot be trusted, so it counts as a CRC failure.
        if flags & _CRC_ERROR or not self._read(_HOP_CHANNEL) & 0x40:
            self.packet = (None, rssi, snr, self.done_us)
            return RX_CRC_ERROR
        n = self._read(_RX_NB_BYTES)
        self._write(_FIFO_ADDR_PTR, self._read(_FIFO_RX_CURRENT))
        self.packet = (bytes(self._burst(_FIFO, n)), rssi, snr, self.done_us)
        return RX_DONE
