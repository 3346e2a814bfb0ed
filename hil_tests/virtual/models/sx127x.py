"""Semtech SX1276/77/78 LoRa transceiver (RFM95W/96W/98W modules) on SPI, from the Semtech
SX1276/77/78/79 datasheet (rev. 7, 2020), LoRa mode only:

- SPI (section 4.3): the first byte after NSS falls is the address, bit 7 set for a write;
  the following bytes are data, the address incrementing after each one (burst access) until
  NSS rises. Address 0x00 is the FIFO: a burst on it moves RegFifoAddrPtr instead.
- RegOpMode 0x01 (section 4.1.3, table 41): bit 7 LongRangeMode, settable only in SLEEP;
  bits 2-0 the mode: SLEEP 0, STDBY 1, FSTX 2, TX 3, FSRX 4, RXCONTINUOUS 5, RXSINGLE 6,
  CAD 7. TX sends RegPayloadLength bytes from RegFifoTxBaseAddr, raises TxDone and falls back
  to STDBY. RXSINGLE falls back to STDBY after RxDone or RxTimeout (RegSymbTimeout symbols
  without a preamble); RXCONTINUOUS stays. CAD raises CadDone (and CadDetected) and returns
  to STDBY.
- The 256-byte FIFO (section 4.1.2.3) is cleared and not accessible in SLEEP. A packet
  received is written from the receive pointer on (RegFifoRxBaseAddr when RX is entered):
  RegFifoRxCurrentAddr its start, RegRxNbBytes its length, RegFifoRxByteAddr past its end.
- RegIrqFlags 0x12: RxTimeout 7, RxDone 6, PayloadCrcError 5, ValidHeader 4, TxDone 3,
  CadDone 2, FhssChangeChannel 1, CadDetected 0; writing 1 clears a flag. A flag set in
  RegIrqFlagsMask 0x11 never rises. ValidHeader rises once the explicit header (the first
  8 symbols after the preamble) is in, RxDone at the end of the packet, with
  PayloadCrcError if the payload was hit after the receiver locked (and CRC is on).
- The receiver locks on a preamble that began while it listened, or no more than the
  preamble minus 4 symbols before; RXSINGLE gives up after RegSymbTimeout symbols.
- DIO0 (table 18, RegDioMapping1 0x40 bits 7-6): 00 RxDone, 01 TxDone, 10 CadDone.
- RegPktSnrValue 0x19: SNR x 4, two's complement. RegPktRssiValue 0x1A on the HF port
  (band 1, 862-1020 MHz): RSSI = -157 + PacketRssi, and with a negative SNR
  RSSI = -157 + PacketRssi + SNR (section 5.5.5); the LF port uses -164.
- IQ inversion: RegInvertIQ 0x33 bit 6 inverts the receiver, bit 0 cleared inverts the
  transmitter (reset 0x27: neither); it only takes effect with RegInvertIQ2 0x3B = 0x19
  (0x1D for normal IQ), as Semtech's application note on the register requires.
- NRESET (section 7.2): pulled low at least 100 µs, the chip restarts with every register at
  its reset value and answers SPI 5 ms after NRESET is released.
- RegVersion 0x42 = 0x12.

Time on air comes from protocol/airtime.py (datasheet section 4.1.1.7). What the radio
sends and hears goes through a shared `Air` (hil_tests/virtual/air.py); without one, frames
are only recorded (`sent`) and `inject()` puts a frame on the radio's own receiver.

The radio's pins are models of their own: `cs_pin` (NSS, driven by the firmware), `reset_pin`
(NRESET) and `dio0_pin` (driven by the chip); `pins()` lists them for the board.

Faults: "nack" (no chip on the bus: MISO stays low, RegVersion reads 0x00), "stuck" (the SPI
transaction never ends: the host never answers), "no_txdone" (the transmission never
completes: the chip stays in TX, TxDone never rises)."""
from hil_tests.virtual.models import Model
from protocol import airtime

FIFO_SIZE = 256
FXOSC = 32000000
VERSION = 0x12

REG_FIFO = 0x00
REG_OP_MODE = 0x01
REG_FRF_MSB, REG_FRF_MID, REG_FRF_LSB = 0x06, 0x07, 0x08
REG_PA_CONFIG = 0x09
REG_FIFO_ADDR_PTR = 0x0D
REG_FIFO_TX_BASE = 0x0E
REG_FIFO_RX_BASE = 0x0F
REG_FIFO_RX_CURRENT = 0x10
REG_IRQ_FLAGS_MASK = 0x11
REG_IRQ_FLAGS = 0x12
REG_RX_NB_BYTES = 0x13
REG_RX_HEADER_CNT_MSB = 0x14
REG_RX_PACKET_CNT_MSB = 0x16
REG_MODEM_STAT = 0x18
REG_PKT_SNR = 0x19
REG_PKT_RSSI = 0x1A
REG_RSSI = 0x1B
REG_HOP_CHANNEL = 0x1C
REG_MODEM_CONFIG1 = 0x1D
REG_MODEM_CONFIG2 = 0x1E
REG_SYMB_TIMEOUT_LSB = 0x1F
REG_PREAMBLE_MSB, REG_PREAMBLE_LSB = 0x20, 0x21
REG_PAYLOAD_LENGTH = 0x22
REG_FIFO_RX_BYTE_ADDR = 0x25
REG_MODEM_CONFIG3 = 0x26
REG_INVERT_IQ = 0x33
REG_SYNC_WORD = 0x39
REG_INVERT_IQ2 = 0x3B
REG_DIO_MAPPING1 = 0x40
REG_VERSION = 0x42
REG_PA_DAC = 0x4D

LONG_RANGE = 0x80
SLEEP, STDBY, FSTX, TX, FSRX, RXCONTINUOUS, RXSINGLE, CAD = range(8)
MODE_NAMES = ("SLEEP", "STDBY", "FSTX", "TX", "FSRX", "RXCONTINUOUS", "RXSINGLE", "CAD")

IRQ_RX_TIMEOUT = 0x80
IRQ_RX_DONE = 0x40
IRQ_PAYLOAD_CRC_ERROR = 0x20
IRQ_VALID_HEADER = 0x10
IRQ_TX_DONE = 0x08
IRQ_CAD_DONE = 0x04
IRQ_CAD_DETECTED = 0x01
DIO0_SOURCES = (IRQ_RX_DONE, IRQ_TX_DONE, IRQ_CAD_DONE, 0)

# Table 41 reset values of the LoRa page (the rest read 0x00).
RESET_VALUES = {
    REG_OP_MODE: 0x09, REG_FRF_MSB: 0x6C, REG_FRF_MID: 0x80, REG_FRF_LSB: 0x00,
    REG_PA_CONFIG: 0x4F, 0x0A: 0x09, 0x0B: 0x2B, 0x0C: 0x20, REG_FIFO_TX_BASE: 0x80,
    REG_MODEM_STAT: 0x10, REG_MODEM_CONFIG1: 0x72, REG_MODEM_CONFIG2: 0x70,
    REG_SYMB_TIMEOUT_LSB: 0x64, REG_PREAMBLE_LSB: 0x08, REG_PAYLOAD_LENGTH: 0x01, 0x23: 0xFF,
    REG_MODEM_CONFIG3: 0x04, 0x31: 0xC3, REG_INVERT_IQ: 0x27, 0x37: 0x0A,
    REG_SYNC_WORD: 0x12, REG_INVERT_IQ2: 0x1D, REG_VERSION: VERSION, REG_PA_DAC: 0x84,
}
READ_ONLY = frozenset((REG_FIFO_RX_CURRENT, REG_RX_NB_BYTES, 0x14, 0x15, 0x16, 0x17,
                       REG_MODEM_STAT, REG_PKT_SNR, REG_PKT_RSSI, REG_RSSI, REG_HOP_CHANNEL,
                       REG_FIFO_RX_BYTE_ADDR, REG_VERSION))
BANDWIDTHS_KHZ = (7.8, 10.4, 15.6, 20.8, 31.25, 41.7, 62.5, 125, 250, 500)
RESET_READY_US = 5000
PREAMBLE_LOCK_SYMBOLS = 4   # symbols of preamble the receiver needs to lock (sec. 4.1.6.1)
HEADER_SYMBOLS = 8          # the explicit header sits in the first 8 payload symbols
CAD_SYMBOLS = 2             # a CAD takes about two symbols (section 4.1.6.2)
RSSI_OFFSET_HF = -157
RSSI_OFFSET_LF = -164
HF_PORT_MIN_HZ = 779000000


class Settings:
    """The modem settings that matter on air, read from the registers at one instant."""

    def __init__(self, regs):
        frf = (regs[REG_FRF_MSB] << 16) | (regs[REG_FRF_MID] << 8) | regs[REG_FRF_LSB]
        self.freq_hz = frf * FXOSC // (1 << 19)
        bw = regs[REG_MODEM_CONFIG1] >> 4
        self.bw_khz = BANDWIDTHS_KHZ[bw] if bw < len(BANDWIDTHS_KHZ) else None
        self.cr = (regs[REG_MODEM_CONFIG1] >> 1) & 0x07
        self.implicit = bool(regs[REG_MODEM_CONFIG1] & 0x01)
        self.sf = regs[REG_MODEM_CONFIG2] >> 4
        self.crc = bool(regs[REG_MODEM_CONFIG2] & 0x04)
        self.symb_timeout = ((regs[REG_MODEM_CONFIG2] & 0x03) << 8) | regs[REG_SYMB_TIMEOUT_LSB]
        self.preamble = (regs[REG_PREAMBLE_MSB] << 8) | regs[REG_PREAMBLE_LSB]
        self.ldro = bool(regs[REG_MODEM_CONFIG3] & 0x08)
        self.sync_word = regs[REG_SYNC_WORD]
        strict = regs[REG_INVERT_IQ2] == 0x19
        self.rx_inverted = strict and bool(regs[REG_INVERT_IQ] & 0x40)
        self.tx_inverted = strict and not regs[REG_INVERT_IQ] & 0x01
        self.power_dbm = _power_dbm(regs[REG_PA_CONFIG], regs[REG_PA_DAC])
        self.payload_length = regs[REG_PAYLOAD_LENGTH]

    def valid(self):
        """Why these settings cannot modulate, or None (SF6 needs implicit header)."""
        if self.bw_khz is None:
            return "reserved bandwidth code"
        if not 6 <= self.sf <= 12:
            return "spreading factor %d out of 6..12" % self.sf
        if not 1 <= self.cr <= 4:
            return "coding rate code %d out of 1..4" % self.cr
        if self.sf == 6 and not self.implicit:
            return "SF6 needs implicit header mode"
        return None

    def symbol_us(self):
        return airtime.symbol_time_ms(self.sf, self.bw_khz) * 1000

    def airtime_us(self, length):
        return round(airtime.time_on_air_ms(length, self.sf, self.bw_khz, self.cr,
                                            self.preamble, not self.implicit, self.crc,
                                            self.ldro) * 1000)


def _power_dbm(pa_config, pa_dac):
    """Output power from RegPaConfig (section 5.4.3): PA_BOOST gives 17 - (15 - OutputPower),
    +20 dBm with RegPaDac 0x87; RFO gives Pmax - (15 - OutputPower), with
    Pmax = 10.8 + 0.6 * MaxPower."""
    out = pa_config & 0x0F
    if pa_config & 0x80:
        return 20 if (pa_dac & 0x07) == 0x07 and out == 15 else 2 + out
    pmax = 10.8 + 0.6 * ((pa_config >> 4) & 0x07)
    return pmax - (15 - out)


class Frame:
    """One transmission as the air sees it (see air.py)."""

    def __init__(self, sender, payload, start, settings, *, position=(0.0, 0.0)):
        self.sender = sender
        self.payload = bytes(payload)
        self.start = start
        self.freq_hz = settings.freq_hz
        self.sf = settings.sf
        self.bw_khz = settings.bw_khz
        self.cr = settings.cr
        self.crc = settings.crc
        self.preamble = settings.preamble
        self.implicit = settings.implicit
        self.power_dbm = settings.power_dbm
        self.iq_inverted = settings.tx_inverted
        self.sync_word = settings.sync_word
        self.position = position
        self.end = start + settings.airtime_us(len(self.payload))
        self.symbol_us = settings.symbol_us()
        self.id = None

    def lock_time(self):
        """The end of the preamble and sync word: a receiver has locked on the frame by
        then, and another frame on air before it spoils the lock."""
        return self.start + (self.preamble + 4.25) * self.symbol_us

    def header_time(self):
        return self.lock_time() + HEADER_SYMBOLS * self.symbol_us

    def __repr__(self):
        return "<Frame %s from %s %.3f-%.3f s SF%d %.1f MHz %d B>" % (
            self.id, self.sender, self.start / 1e6, self.end / 1e6, self.sf,
            self.freq_hz / 1e6, len(self.payload))


class _RadioPin(Model):
    def __init__(self, radio, pin):
        self.radio = radio
        self.pin = pin

    def bus_keys(self):
        return [("pin", self.pin)]


class _ChipSelect(_RadioPin):
    def read(self, vt):
        return self.radio._nss

    def write(self, value, vt):
        self.radio._select(value, vt)


class _Reset(_RadioPin):
    def read(self, vt):
        return self.radio._nreset

    def write(self, value, vt):
        self.radio._reset_pin(value, vt)


class _Dio0(_RadioPin):
    def read(self, vt):
        return self.radio.dio0(vt)

    def write(self, value, vt):
        pass  # an output of the chip: the firmware's writes go nowhere


class AirRadio(Model):
    """What a radio model on the air does the same way whatever the chip: its SPI bus, its
    clock for the air's horizon, its transmissions, its label, and the fate of a frame at
    its receiver (from the air, or from inject()'s inbox without one). A subclass has
    `bus`, `board`, `_vt`, `sent`, `name`, `air` and `inbox`."""

    chip_name = "radio"

    def bus_keys(self):
        return [("spi", self.bus)]

    def clock(self):
        """The latest virtual time this radio's board has reached (for the air's horizon)."""
        return self.board.vt if self.board is not None else self._vt

    def transmissions(self):
        return self.sent

    @property
    def label(self):
        return self.name or (self.board.name if self.board is not None else self.chip_name)

    def _fate(self, frame):
        """(status, rssi, snr) of a frame at this receiver once it has ended: status
        "delivered", "corrupt" (hit after the receiver locked) or another reason it was
        not heard."""
        if self.air is not None:
            return self.air.fate(frame, self)
        for f, rssi, snr, corrupt in self.inbox:
            if f is frame:
                return ("corrupt" if corrupt else "delivered"), rssi, snr
        return "lost", None, None

    def _locks(self, frame):
        """Whether the receiver locked on the frame's preamble and read its header."""
        if self.air is not None:
            return self.air.locks(frame, self)
        return self._fate(frame)[0] in ("delivered", "corrupt")


class SX127x(AirRadio):
    chip_name = "sx127x"

    def __init__(self, *, bus="spi1", cs=15, dio0=35, reset=4, air=None, name=None,
                 position=(0.0, 0.0)):
        self.bus = bus
        self.name = name
        self.position = position
        self.air = air
        self.cs_pin = _ChipSelect(self, cs)
        self.dio0_pin = _Dio0(self, dio0)
        self.reset_pin = _Reset(self, reset)
        self.sent = []        # every Frame this radio transmitted
        self.received = []    # every Frame put into its FIFO (with its fate)
        self.errors = []      # commands the chip ignored, and why (for tests and logs)
        self.inbox = []       # frames injected without an air: (Frame, rssi, snr, corrupt)
        self._nss = 1
        self._nreset = 1
        self._power_on()
        if air is not None:
            air.join(self)

    # ------------------------------------------------------------ board wiring

    def pins(self):
        return [self.cs_pin, self.dio0_pin, self.reset_pin]

    # ------------------------------------------------------------ state

    def _power_on(self):
        self.regs = bytearray(0x80)
        for addr, value in RESET_VALUES.items():
            self.regs[addr] = value
        self.fifo = bytearray(FIFO_SIZE)
        self._addr = None      # the address of the ongoing SPI transaction
        self._write = False
        self._ready_at = 0
        self._vt = 0
        self._tx = None        # the Frame being sent
        self._rx_start = None  # when RX was entered
        self._rx_settings = None
        self._rx_ptr = 0
        self._rx_frame = None  # the frame the receiver locked on
        self._header_seen = False
        self._heard = set()    # frame ids this RX session already handled
        self._cad_end = None
        self._cad_frame = None
        self._valid_headers = 0
        self._valid_packets = 0

    @property
    def mode(self):
        return self.regs[REG_OP_MODE] & 0x07

    @property
    def lora(self):
        return bool(self.regs[REG_OP_MODE] & LONG_RANGE)

    def _set_mode(self, mode):
        self.regs[REG_OP_MODE] = (self.regs[REG_OP_MODE] & 0xF8) | mode

    def _raise(self, flags):
        self.regs[REG_IRQ_FLAGS] |= flags & ~self.regs[REG_IRQ_FLAGS_MASK]

    def dio0(self, vt):
        """DIO0's level: the IRQ flag RegDioMapping1 routes to it."""
        self._advance(vt)
        source = DIO0_SOURCES[self.regs[REG_DIO_MAPPING1] >> 6]
        return 1 if self.regs[REG_IRQ_FLAGS] & source else 0

    # ------------------------------------------------------------ pins

    def _select(self, value, vt):
        value = 1 if value else 0
        if value == 0 and self._nss == 1:
            self._addr = None  # a new transaction: the next byte is an address
        self._nss = value
        self._advance(vt)

    def _reset_pin(self, value, vt):
        value = 1 if value else 0
        if self._nreset == 0 and value == 1:
            if self.air is not None:
                self.air.stop_listening(self, vt)
            self._power_on()
            self._ready_at = vt + RESET_READY_US
        self._nreset = value

    # ------------------------------------------------------------ SPI

    def transfer(self, data, vt):
        """One SPI exchange while NSS is low: returns what the chip drove on MISO."""
        self._vt = max(self._vt, vt)
        self._advance(vt)
        out = bytearray(len(data))
        if self.fault == "nack" or self._nss or not self._nreset or vt < self._ready_at:
            return bytes(out)  # nobody drives MISO: it reads low
        for i, byte in enumerate(data):
            if self._addr is None:
                self._addr = byte & 0x7F
                self._write = bool(byte & 0x80)
                continue
            if self._write:
                self._write_reg(self._addr, byte, vt)
            else:
                out[i] = self._read_reg(self._addr)
            if self._addr != REG_FIFO:
                self._addr = (self._addr + 1) & 0x7F
        return bytes(out)

    def _read_reg(self, addr):
        if addr == REG_FIFO:
            if self.mode == SLEEP:
                return 0
            ptr = self.regs[REG_FIFO_ADDR_PTR]
            self.regs[REG_FIFO_ADDR_PTR] = (ptr + 1) & 0xFF
            return self.fifo[ptr]
        return self.regs[addr]

    def _write_reg(self, addr, value, vt):
        if addr == REG_FIFO:
            if self.mode == SLEEP:
                self.errors.append("FIFO write in SLEEP ignored")
                return
            ptr = self.regs[REG_FIFO_ADDR_PTR]
            self.fifo[ptr] = value
            self.regs[REG_FIFO_ADDR_PTR] = (ptr + 1) & 0xFF
        elif addr == REG_OP_MODE:
            self._write_op_mode(value, vt)
        elif addr == REG_IRQ_FLAGS:
            self.regs[REG_IRQ_FLAGS] &= ~value & 0xFF
        elif addr not in READ_ONLY:
            self.regs[addr] = value

    def _write_op_mode(self, value, vt):
        old = self.regs[REG_OP_MODE]
        if (value ^ old) & LONG_RANGE and old & 0x07 != SLEEP:
            # Table 41: LongRangeMode "can be modified only in Sleep mode".
            self.errors.append("LongRangeMode changed outside SLEEP ignored")
            value = (value & ~LONG_RANGE) | (old & LONG_RANGE)
        mode = value & 0x07
        was = old & 0x07
        self.regs[REG_OP_MODE] = value
        if not self.lora:
            return  # FSK/OOK mode is not modelled
        if was in (RXCONTINUOUS, RXSINGLE) and mode not in (RXCONTINUOUS, RXSINGLE):
            self._stop_rx(vt)
        if mode == SLEEP:
            self.fifo = bytearray(FIFO_SIZE)
            self._valid_headers = self._valid_packets = 0
            self._tx = None
        elif mode == TX:
            self._start_tx(was, vt)
        elif mode in (RXCONTINUOUS, RXSINGLE):
            if was not in (RXCONTINUOUS, RXSINGLE) or mode != was:
                self._start_rx(mode, vt)
        elif mode == CAD:
            self._start_cad(vt)

    # ------------------------------------------------------------ TX

    def _start_tx(self, was, vt):
        settings = Settings(self.regs)
        problem = settings.valid()
        if was not in (STDBY, FSTX, FSRX, TX):
            problem = "TX requested from %s (only from STDBY)" % MODE_NAMES[was]
        elif settings.payload_length == 0:
            problem = "TX with RegPayloadLength 0"
        if problem:
            self.errors.append(problem)
            self._set_mode(was)
            return
        base = self.regs[REG_FIFO_TX_BASE]
        payload = bytes(self.fifo[(base + i) & 0xFF] for i in range(settings.payload_length))
        frame = Frame(self.label, payload, vt, settings, position=self.position)
        self._tx = frame
        self.sent.append(frame)
        if self.air is not None:
            self.air.transmit(self, frame)

    # ------------------------------------------------------------ RX

    def _start_rx(self, mode, vt):
        settings = Settings(self.regs)
        problem = settings.valid()
        if problem:
            self.errors.append(problem)
            self._set_mode(STDBY)
            return
        self._rx_start = vt
        self._rx_settings = settings
        self._rx_ptr = self.regs[REG_FIFO_RX_BASE]
        self._rx_frame = None
        if self.air is not None:
            self.air.listen(self, settings, vt)

    def _stop_rx(self, vt):
        self._rx_start = None
        self._rx_frame = None
        self._header_seen = False
        if self.air is not None:
            self.air.stop_listening(self, vt)

    def _candidates(self, vt):
        """Frames on this receiver's channel that started by vt, in order of start."""
        if self.air is not None:
            return self.air.candidates(self, self._rx_settings, self._rx_start, vt)
        # As on air: a receiver hears a frame on its channel at its spreading factor only.
        s = self._rx_settings
        return [f for f, *_ in self.inbox if f.start <= vt and f.sf == s.sf
                and abs(f.freq_hz - s.freq_hz) < s.bw_khz * 250]

    def _step_rx(self, vt):
        s = self._rx_settings
        timeout_at = self._rx_start + max(s.symb_timeout, 4) * s.symbol_us()
        if self._rx_frame is None:
            for frame in self._candidates(vt):
                if frame.id in self._heard:
                    continue
                if frame.start + (frame.preamble - PREAMBLE_LOCK_SYMBOLS) * frame.symbol_us \
                        < self._rx_start:
                    continue  # too little preamble left when the receiver started
                if self.mode == RXSINGLE and frame.start > timeout_at:
                    continue
                self._heard.add(frame.id)
                self._rx_frame = frame
                break
        frame = self._rx_frame
        if frame is None:
            if self.mode == RXSINGLE and vt >= timeout_at:
                self._raise(IRQ_RX_TIMEOUT)
                self._stop_rx(vt)
                self._set_mode(STDBY)
            return
        if vt >= frame.header_time() and not self._header_seen:
            if not self._locks(frame):
                self._rx_frame = None  # never locked: the receiver keeps searching
                self._step_rx(vt)
                return
            self._header_seen = True
            self._valid_headers += 1
            self.regs[REG_HOP_CHANNEL] = 0x40 if frame.crc else 0x00
            self.regs[REG_MODEM_STAT] = (frame.cr << 5) | 0x0B  # header valid, RX on-going
            self._raise(IRQ_VALID_HEADER)
        if vt < frame.end:
            return
        self._rx_frame = None
        self._header_seen = False
        status, rssi, snr = self._fate(frame)
        if status in ("delivered", "corrupt"):
            self._deliver(frame, rssi, snr, status == "corrupt")
        elif self.mode == RXSINGLE and vt < timeout_at:
            return  # not heard at all: the receiver keeps waiting for a preamble
        if self.mode == RXSINGLE:
            if status not in ("delivered", "corrupt"):
                self._raise(IRQ_RX_TIMEOUT)
            self._stop_rx(vt)
            self._set_mode(STDBY)

    def _deliver(self, frame, rssi, snr, corrupt):
        payload = bytearray(frame.payload)
        if corrupt:
            # A payload hit by another transmission: symbols decoded wrong.
            for i in range(0, len(payload), 3):
                payload[i] ^= 0x5A
        start = self._rx_ptr
        for i, byte in enumerate(payload):
            self.fifo[(start + i) & 0xFF] = byte
        self._rx_ptr = (start + len(payload)) & 0xFF
        self.regs[REG_FIFO_RX_CURRENT] = start
        self.regs[REG_RX_NB_BYTES] = len(payload)
        self.regs[REG_FIFO_RX_BYTE_ADDR] = self._rx_ptr
        snr_q = max(-128, min(127, round(snr * 4)))
        self.regs[REG_PKT_SNR] = snr_q & 0xFF
        offset = RSSI_OFFSET_HF if frame.freq_hz >= HF_PORT_MIN_HZ else RSSI_OFFSET_LF
        packet_rssi = rssi - offset - (snr_q / 4 if snr_q < 0 else 0)
        self.regs[REG_PKT_RSSI] = max(0, min(255, round(packet_rssi)))
        self.regs[REG_MODEM_STAT] = 0x10
        flags = IRQ_RX_DONE
        if corrupt and frame.crc:
            flags |= IRQ_PAYLOAD_CRC_ERROR
        else:
            self._valid_packets += 1
        self.regs[REG_RX_PACKET_CNT_MSB:REG_RX_PACKET_CNT_MSB + 2] = \
            (self._valid_packets & 0xFFFF).to_bytes(2, "big")
        self.regs[REG_RX_HEADER_CNT_MSB:REG_RX_HEADER_CNT_MSB + 2] = \
            (self._valid_headers & 0xFFFF).to_bytes(2, "big")
        self._raise(flags)
        self.received.append((frame, rssi, snr, corrupt))

    # ------------------------------------------------------------ CAD

    def _start_cad(self, vt):
        settings = Settings(self.regs)
        if settings.valid():
            self.errors.append(settings.valid())
            self._set_mode(STDBY)
            return
        self._cad_end = vt + CAD_SYMBOLS * settings.symbol_us()
        self._cad_frame = None
        if self.air is not None:
            self._cad_frame = self.air.activity(self, settings, vt, self._cad_end)

    # ------------------------------------------------------------ time

    def _advance(self, vt):
        """Bring the chip's state to virtual time vt."""
        self._vt = max(self._vt, vt)
        if not self.lora:
            return
        if self._tx is not None and self.mode == TX and vt >= self._tx.end \
                and self.fault != "no_txdone":
            self._tx = None
            self._raise(IRQ_TX_DONE)
            self._set_mode(STDBY)
            if self.air is not None:
                self.air.settle(self, vt)
        elif self.mode in (RXCONTINUOUS, RXSINGLE) and self._rx_start is not None:
            self._step_rx(vt)
        elif self.mode == CAD and self._cad_end is not None and vt >= self._cad_end:
            self._cad_end = None
            self._raise(IRQ_CAD_DONE | (IRQ_CAD_DETECTED if self._cad_frame else 0))
            self._set_mode(STDBY)

    def inject(self, payload, *, rssi=-80.0, snr=9.0, corrupt=False, start=None, freq_hz=None,
               sf=None, bw_khz=None, cr=1, crc=True, preamble=8):
        """Put a frame on this radio's receiver without an air (tests): it starts at `start`
        (default: now) with the radio's current modem settings unless given."""
        s = Settings(self.regs)
        s.freq_hz = freq_hz or s.freq_hz
        s.sf, s.bw_khz, s.cr, s.crc, s.preamble = sf or s.sf, bw_khz or s.bw_khz, cr, crc, preamble
        s.implicit = False
        frame = Frame("injected", payload, self._vt if start is None else start, s)
        frame.id = "inj%d" % len(self.inbox)
        self.inbox.append((frame, rssi, snr, "corrupt" if corrupt else False))
        return frame
