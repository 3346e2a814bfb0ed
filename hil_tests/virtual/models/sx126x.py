"""Semtech SX1261/SX1262 LoRa transceiver on SPI, from the Semtech SX1261/2 datasheet
(DS.SX1261-2.W.APP rev. 2.1/2.2), LoRa packet type only.

How it differs from the SX127x (models/sx127x.py): no register page to poke, but commands
(an opcode and its parameters), a BUSY line the host must wait on, one IRQ register routed
to DIO1/2/3 by masks, a 24-bit RF frequency word over a 32 MHz crystal divided by 2^25
(not 2^19), a 16-bit sync word in registers 0x0740/0x0741, and a receiver that timestamps
itself in steps of 15.625 µs instead of counting symbols in a register.

- SPI (section 8.2, section 10): NSS falls, the opcode, the parameters, NSS rises; the chip
  executes the command when NSS rises. MISO carries an RFU byte while the opcode goes in
  (this model drives 0x00 there: a driver that takes it for the status is caught), then the
  status byte on every byte of a write command. Read commands put one status byte after
  their address or offset and then their data (13.2: ReadRegister is opcode,
  address[15:8], address[7:0], NOP -> RFU, status, status, status, data...; ReadBuffer is
  opcode, offset, NOP -> RFU, status, status, data...).
- BUSY (section 8.3.1 and its table of mode-transition BUSY times): high while the chip
  processes a command, from NSS rising on; the host waits for BUSY low before each
  transaction. Sleep to STDBY_RC on a falling NSS: 3500 µs cold start, 340 µs warm start;
  STDBY_RC to STDBY_XOSC 31 µs; to FS 50 µs; to TX 126 µs (105 from STDBY_XOSC, 76 from FS:
  BUSY falls when the preamble starts); to RX or CAD 83 µs (62, 41). Other commands:
  `COMMAND_BUSY_US` (the datasheet gives no figure; a few µs on silicon). BUSY stays high
  in SLEEP and through start-up after NRESET (section 9.1).
- Status byte (13.5.1 GetStatus): bits 6:4 chip mode (2 STDBY_RC, 3 STDBY_XOSC,
  4 FS, 5 RX, 6 TX), bits 3:1 command status (2 data available: a packet was received,
  3 command timeout, 4 command processing error: unknown opcode or wrong number of
  parameters, 5 failure to execute, 6 TX done). Bits 7 and 0 are reserved and read 0 here.
  A status read reports the state before the command being clocked in. The command status is
  set by each write command (1 when it executed: RFU in the datasheet, what silicon returns,
  0x22 in STDBY_RC; 4 or 5 when not) and by TxDone (6) and RxDone (2); read commands
  (Get*, ReadRegister, ReadBuffer) leave it as it was.
- IRQ register (table 13-29): TxDone 0, RxDone 1, PreambleDetected 2, SyncWordValid 3 (FSK),
  HeaderValid 4, HeaderErr 5, CrcErr 6, CadDone 7, CadDetected 8, Timeout 9. Here
  PreambleDetected rises when the receiver has locked (end of preamble and sync word),
  HeaderValid 8 symbols later (explicit header only), RxDone at the end with CrcErr if the
  payload was hit after the lock; HeaderErr and SyncWordValid never rise. A flag rises only
  if set in SetDioIrqParams' IrqMask (all masked at reset); DIO1 is high while
  IrqStatus & Dio1Mask is not 0. ClearIrqStatus clears the flags given.
- SetRfFrequency (13.4.1): RfFreq = f * 2^25 / 32 MHz, a 32-bit word.
- SetPacketType (13.4.2): 0x00 GFSK (the reset value), 0x01 LoRa. Only LoRa is modelled:
  TX or RX with GFSK fails to execute (status 5).
- SetModulationParams, LoRa (13.4.5.2): SF 5..12; BW codes 0x00 7.8, 0x08 10.4, 0x01 15.6,
  0x09 20.8, 0x02 31.25, 0x0A 41.7, 0x03 62.5, 0x04 125, 0x05 250, 0x06 500 kHz; CR 1..4 =
  4/5..4/8; LowDataRateOptimize 0/1. SetPacketParams, LoRa (13.4.6.2): preamble length
  (16 bit), header type (0 explicit, 1 implicit), payload length, CRC (0 off, 1 on), InvertIQ
  (0 standard, 1 inverted; one setting for TX and RX, unlike the SX127x).
- Buffer (section 7.2): 256 bytes, circular. SetBufferBaseAddress(tx, rx); WriteBuffer and
  ReadBuffer take an offset. A received packet is written from the RX base address on;
  GetRxBufferStatus returns (status, PayloadLengthRx, RxStartBufferPointer).
- GetPacketStatus, LoRa (13.5.3): status, RssiPkt (-x/2 dBm, the packet's average power),
  SnrPkt (signed, x/4 dB), SignalRssiPkt (-x/2 dBm, the signal after despreading).
- SetTx (13.1.4): timeout in 15.625 µs steps, 24 bit, 0 = none; TxDone (or Timeout) and back
  to the fallback mode (SetRxTxFallbackMode, STDBY_RC by default). SetRx (13.1.5): timeout
  0 = single (until a packet), 0xFFFFFF = continuous, else single with Timeout after it; the
  timer stops at the sync word / header (or at the preamble after StopTimerOnPreamble(1)).
  SetLoRaSymbNumTimeout(n): a single RX gives up after n symbols without a preamble.
- SetStandby (13.1.2): 0 STDBY_RC, 1 STDBY_XOSC. SetSleep (13.1.1): only from STDBY; bit 2
  warm start keeps the configuration (this model keeps the data buffer too), cold start
  loses it; bit 0 (RTC wake-up) is not modelled: only a falling NSS wakes the chip.
- Registers (section 12, table 12-1): the LoRa sync word 0x0740/0x0741 (reset 0x14 0x24,
  the SX127x's 0x12; 0x34 0x44 is the SX127x's 0x34: the high nibble of each byte makes the
  SX127x byte), IQ polarity 0x0736 (reset 0x0D; erratum 15.4: bit 2 cleared for inverted IQ),
  TX clamp 0x08D8 (erratum 15.2), TX modulation 0x0889 (erratum 15.1), OCP 0x08E7, and any
  other address: written values are kept, unwritten ones read 0x00.
- The frame's power (13.1.14 SetPaConfig, 13.4.4 SetTxParams, table 13-21): SetTxParams'
  power (-9..+22 dBm on the SX1262's PA, -17..+15 on the SX1261's), reduced to a row's
  output when SetPaConfig holds that row's paDutyCycle and hpMax at full power (+22 dBm on
  the SX1262: 0x04 0x07 +22, 0x03 0x05 +20, 0x02 0x03 +17, 0x02 0x02 +14).
- Accepted and recorded, with no effect on air: SetRegulatorMode, Calibrate (busy 3.5 ms),
  CalibrateImage, SetDIO2AsRfSwitchCtrl, SetDIO3AsTCXOCtrl.
  GetDeviceErrors reads 0 (no calibration fails here); ClearDeviceErrors clears it.
- NRESET (section 8.1): held low 100 µs or more, the chip restarts with everything at its
  reset value; BUSY stays high `RESET_READY_US` after NRESET rises (start-up and calibration).

Time on air comes from protocol/airtime.py for SF7..12 (the SX127x formula, which the SX126x
shares there); for SF5 and SF6 the SX126x's own count (datasheet section 6.1.4: 6.25
symbols after the preamble, no LowDataRateOptimize in the payload symbols). Frames, the
air and the receiver's lock/fate rules are the SX127x model's: an SX126x node and an SX127x
gateway hear each other (same frequency, SF, bandwidth, IQ polarity and sync word).

The radio's pins are models of their own: `cs_pin` (NSS) and `reset_pin` (NRESET), driven
by the host; `busy_pin` and `dio1_pin`, driven by the chip; `pins()` lists them.

Faults: "nack" (no chip: MISO reads 0x00, BUSY and DIO1 low), "stuck" (BUSY never falls:
the chip processes nothing; note that the board also leaves SPI requests to a model with
this fault unanswered), "no_txdone" (the transmission never completes: the chip stays in TX
and TxDone never rises; a SetTx timeout still raises Timeout)."""
import math

from hil_tests.virtual.air import noise_floor_dbm
from hil_tests.virtual.models.sx127x import (PREAMBLE_LOCK_SYMBOLS, AirRadio, Frame,
                                             _ChipSelect, _RadioPin, _Reset)
from protocol import airtime

BUFFER_SIZE = 256
FXOSC = 32000000
RTC_STEP_US = 15.625        # SetTx/SetRx/SetCadParams timeouts: 64 kHz RTC steps

# Opcodes (section 13, table 13-1)
OP_RESET_STATS = 0x00       # also what a NOP byte reads as
OP_CLEAR_IRQ_STATUS = 0x02
OP_CLEAR_DEVICE_ERRORS = 0x07
OP_SET_DIO_IRQ_PARAMS = 0x08
OP_WRITE_REGISTER = 0x0D
OP_WRITE_BUFFER = 0x0E
OP_GET_STATS = 0x10
OP_GET_PACKET_TYPE = 0x11
OP_GET_IRQ_STATUS = 0x12
OP_GET_RX_BUFFER_STATUS = 0x13
OP_GET_PACKET_STATUS = 0x14
OP_GET_RSSI_INST = 0x15
OP_GET_DEVICE_ERRORS = 0x17
OP_READ_REGISTER = 0x1D
OP_READ_BUFFER = 0x1E
OP_SET_STANDBY = 0x80
OP_SET_RX = 0x82
OP_SET_TX = 0x83
OP_SET_SLEEP = 0x84
OP_SET_RF_FREQUENCY = 0x86
OP_SET_CAD_PARAMS = 0x88
OP_CALIBRATE = 0x89
OP_SET_PACKET_TYPE = 0x8A
OP_SET_MODULATION_PARAMS = 0x8B
OP_SET_PACKET_PARAMS = 0x8C
OP_SET_TX_PARAMS = 0x8E
OP_SET_BUFFER_BASE_ADDRESS = 0x8F
OP_SET_RX_TX_FALLBACK_MODE = 0x93
OP_SET_PA_CONFIG = 0x95
_SX1262_PA_ROWS = {(0x04, 0x07): 22, (0x03, 0x05): 20, (0x02, 0x03): 17, (0x02, 0x02): 14}
OP_SET_REGULATOR_MODE = 0x96
OP_SET_DIO3_AS_TCXO_CTRL = 0x97
OP_CALIBRATE_IMAGE = 0x98
OP_SET_DIO2_AS_RF_SWITCH_CTRL = 0x9D
OP_STOP_TIMER_ON_PREAMBLE = 0x9F
OP_SET_LORA_SYMB_NUM_TIMEOUT = 0xA0
OP_GET_STATUS = 0xC0
OP_SET_FS = 0xC1
OP_SET_CAD = 0xC5

# Write commands: opcode -> the number of parameter bytes the chip needs. Fewer is a
# command processing error; more are ignored (drivers send the GFSK-sized 8 or 9 bytes).
WRITE_PARAMS = {
    OP_RESET_STATS: 0, OP_CLEAR_IRQ_STATUS: 2, OP_CLEAR_DEVICE_ERRORS: 2,
    OP_SET_DIO_IRQ_PARAMS: 8, OP_WRITE_REGISTER: 3, OP_WRITE_BUFFER: 2,
    OP_SET_STANDBY: 1, OP_SET_RX: 3, OP_SET_TX: 3, OP_SET_SLEEP: 1, OP_SET_RF_FREQUENCY: 4,
    OP_SET_CAD_PARAMS: 7, OP_CALIBRATE: 1, OP_SET_PACKET_TYPE: 1,
    OP_SET_MODULATION_PARAMS: 4, OP_SET_PACKET_PARAMS: 6, OP_SET_TX_PARAMS: 2,
    OP_SET_BUFFER_BASE_ADDRESS: 2, OP_SET_RX_TX_FALLBACK_MODE: 1, OP_SET_PA_CONFIG: 4,
    OP_SET_REGULATOR_MODE: 1, OP_SET_DIO3_AS_TCXO_CTRL: 4, OP_CALIBRATE_IMAGE: 2,
    OP_SET_DIO2_AS_RF_SWITCH_CTRL: 1, OP_STOP_TIMER_ON_PREAMBLE: 1,
    OP_SET_LORA_SYMB_NUM_TIMEOUT: 1, OP_SET_FS: 0, OP_SET_CAD: 0,
}
# Read commands: opcode -> bytes of address/offset before the status byte.
READ_COMMANDS = {
    OP_GET_STATUS: 0, OP_GET_STATS: 0, OP_GET_PACKET_TYPE: 0, OP_GET_IRQ_STATUS: 0,
    OP_GET_RX_BUFFER_STATUS: 0, OP_GET_PACKET_STATUS: 0, OP_GET_RSSI_INST: 0,
    OP_GET_DEVICE_ERRORS: 0, OP_READ_REGISTER: 2, OP_READ_BUFFER: 1,
}

# Chip modes (status bits 6:4); SLEEP has no status (nothing answers).
SLEEP, STDBY_RC, STDBY_XOSC, FS, RX, TX = 0, 2, 3, 4, 5, 6
MODE_NAMES = {SLEEP: "SLEEP", STDBY_RC: "STDBY_RC", STDBY_XOSC: "STDBY_XOSC", FS: "FS",
              RX: "RX", TX: "TX"}
# Command status (status bits 3:1)
CMD_OK = 0x1                # RFU in the datasheet; silicon reports it when all is well
CMD_DATA_AVAILABLE = 0x2
CMD_TIMEOUT = 0x3
CMD_PROCESSING_ERROR = 0x4
CMD_EXEC_FAILURE = 0x5
CMD_TX_DONE = 0x6

# IRQ register (table 13-29)
IRQ_TX_DONE = 1 << 0
IRQ_RX_DONE = 1 << 1
IRQ_PREAMBLE_DETECTED = 1 << 2
IRQ_SYNC_WORD_VALID = 1 << 3
IRQ_HEADER_VALID = 1 << 4
IRQ_HEADER_ERR = 1 << 5
IRQ_CRC_ERR = 1 << 6
IRQ_CAD_DONE = 1 << 7
IRQ_CAD_DETECTED = 1 << 8
IRQ_TIMEOUT = 1 << 9

PACKET_TYPE_GFSK = 0x00
PACKET_TYPE_LORA = 0x01
BANDWIDTHS_KHZ = {0x00: 7.8, 0x08: 10.4, 0x01: 15.6, 0x09: 20.8, 0x02: 31.25, 0x0A: 41.7,
                  0x03: 62.5, 0x04: 125, 0x05: 250, 0x06: 500}
CAD_SYMBOLS = {0x00: 1, 0x01: 2, 0x02: 4, 0x03: 8, 0x04: 16}
RX_CONTINUOUS = 0xFFFFFF

REG_IQ_POLARITY = 0x0736
REG_SYNC_WORD_MSB = 0x0740
REG_SYNC_WORD_LSB = 0x0741
REG_TX_MODULATION = 0x0889
REG_TX_CLAMP = 0x08D8
REG_OCP = 0x08E7
RESET_REGISTERS = {REG_SYNC_WORD_MSB: 0x14, REG_SYNC_WORD_LSB: 0x24, REG_IQ_POLARITY: 0x0D}

# BUSY high times, µs (section 8.3.1); commands without a figure take COMMAND_BUSY_US.
COMMAND_BUSY_US = 5
WAKE_COLD_US = 3500
WAKE_WARM_US = 340
RESET_READY_US = 3500
CALIBRATE_US = 3500
TO_XOSC_US = 31
TO_FS_US = {STDBY_RC: 50, STDBY_XOSC: 40, FS: 0}
TO_TX_US = {STDBY_RC: 126, STDBY_XOSC: 105, FS: 76}
TO_RX_US = {STDBY_RC: 83, STDBY_XOSC: 62, FS: 41}
RESET_MIN_LOW_US = 100      # section 8.1: NRESET low typically 100 µs


class Settings:
    """The modem settings that matter on air, from the chip's command parameters at one
    instant: the same fields the SX127x model's Settings gives the Frame and the air."""

    def __init__(self, chip):
        self.freq_hz = chip.rf_freq * FXOSC // (1 << 25)
        self.packet_type = chip.packet_type
        sf, bw, cr, ldro = chip.modulation
        self.sf = sf
        self.bw_khz = BANDWIDTHS_KHZ.get(bw)
        self.cr = cr
        self.ldro = bool(ldro)
        preamble, header, length, crc, invert = chip.packet_params
        self.preamble = preamble
        self.implicit = bool(header)
        self.payload_length = length
        self.crc = bool(crc)
        self.tx_inverted = self.rx_inverted = bool(invert)
        self.sync_word = ((chip.regs.get(REG_SYNC_WORD_MSB, 0) & 0xF0)
                          | (chip.regs.get(REG_SYNC_WORD_LSB, 0) >> 4))
        self.power_dbm = chip.output_dbm()

    def valid(self):
        """Why these settings cannot modulate, or None."""
        if self.packet_type != PACKET_TYPE_LORA:
            return "packet type 0x%02X: only LoRa (0x01) is modelled" % self.packet_type
        if self.bw_khz is None:
            return "reserved bandwidth code"
        if not 5 <= self.sf <= 12:
            return "spreading factor %d out of 5..12" % self.sf
        if not 1 <= self.cr <= 4:
            return "coding rate code %d out of 1..4" % self.cr
        return None

    def symbol_us(self):
        return airtime.symbol_time_ms(self.sf, self.bw_khz) * 1000

    def airtime_us(self, length):
        if self.sf >= 7:
            return round(airtime.time_on_air_ms(length, self.sf, self.bw_khz, self.cr,
                                                self.preamble, not self.implicit, self.crc,
                                                self.ldro) * 1000)
        # Section 6.1.4, SF5 and SF6: preamble + 6.25 + 8 + ceil(max(8 PL + 16 CRC - 4 SF
        # + 20 (explicit header), 0) / (4 SF)) * (CR + 4) symbols.
        bits = 8 * length + 16 * self.crc - 4 * self.sf + (0 if self.implicit else 20)
        blocks = -(-max(bits, 0) // (4 * self.sf))
        symbols = self.preamble + 6.25 + 8 + blocks * (self.cr + 4)
        return round(symbols * self.symbol_us())


class _Output(_RadioPin):
    """A pin the chip drives (BUSY, DIO1): the host's writes go nowhere."""

    def __init__(self, radio, pin, level):
        super().__init__(radio, pin)
        self.level = level

    def read(self, vt):
        return self.level(vt)

    def write(self, value, vt):
        pass


class SX126x(AirRadio):
    chip_name = "sx126x"

    def __init__(self, *, bus="spi1", cs=15, busy=27, dio1=26, reset=4, air=None, name=None,
                 position=(0.0, 0.0), variant="SX1262"):
        self.bus = bus
        self.name = name
        self.position = position
        self.air = air
        self.variant = variant
        self.cs_pin = _ChipSelect(self, cs)
        self.reset_pin = _Reset(self, reset)
        self.busy_pin = _Output(self, busy, self.busy)
        self.dio1_pin = _Output(self, dio1, self.dio1)
        self.sent = []        # every Frame this radio transmitted
        self.received = []    # every Frame put into its buffer: (Frame, rssi, snr, corrupt)
        self.errors = []      # commands the chip refused, and why (for tests and logs)
        self.commands = []    # (vt, opcode, params) of every command executed
        self.inbox = []       # frames injected without an air: (Frame, rssi, snr, corrupt)
        self._nss = 1
        self._nreset = 1
        self._reset_low_at = None
        self._vt = 0
        self._power_on()
        if air is not None:
            air.join(self)

    # ------------------------------------------------------------ board wiring

    def pins(self):
        return [self.cs_pin, self.busy_pin, self.dio1_pin, self.reset_pin]

    # ------------------------------------------------------------ state

    def _power_on(self):
        """Every setting at its reset value (power-on, NRESET, wake from a cold sleep)."""
        self.mode = STDBY_RC
        self.cmd_status = CMD_OK
        self.regs = dict(RESET_REGISTERS)
        self.buffer = bytearray(BUFFER_SIZE)
        self.packet_type = PACKET_TYPE_GFSK
        self.rf_freq = 0
        self.modulation = (7, 0x04, 1, 0)           # SF, BW code, CR, LDRO
        self.packet_params = (8, 0, 0xFF, 1, 0)     # preamble, header, length, CRC, IQ
        self.tx_base = 0
        self.rx_base = 0
        self.irq = 0
        self.irq_mask = 0
        self.dio_masks = [0, 0, 0]
        self.power_dbm = 14
        self.ramp = 0
        self.pa_config = None
        self.fallback = STDBY_RC
        self.stop_on_preamble = False
        self.symb_num_timeout = 0
        self.cad_params = (0x01, 0, 0, 0, 0)        # symbols, detPeak, detMin, exit, timeout
        self.device_errors = 0
        self.rx_length = 0
        self.rx_start_ptr = 0
        self.packet_status = (0, 0, 0)
        self.stats = [0, 0, 0]                      # received, CRC errors, header errors
        self.warm = False
        self._busy_until = 0
        self._txn = None        # bytes of the ongoing SPI transaction (None: dropped)
        self._status_out = 0
        self._tx = None
        self._tx_timeout_at = None
        self._rx_start = None
        self._rx_settings = None
        self._rx_timeout_at = None
        self._rx_continuous = False
        self._rx_frame = None
        self._preamble_seen = False
        self._header_seen = False
        self._heard = set()
        self._cad_end = None
        self._cad_frame = None

    def status(self):
        """The status byte (13.5.1): chip mode in bits 6:4, command status in bits 3:1."""
        return (self.mode << 4) | (self.cmd_status << 1)

    def output_dbm(self):
        """What the PA puts out (table 13-21): the SX1262's optimal settings for +20, +17
        and +14 dBm keep SetTxParams at +22 dBm and lower paDutyCycle and hpMax instead."""
        if self.pa_config is not None and self.pa_config[2] == 0 and self.power_dbm == 22:
            return _SX1262_PA_ROWS.get(tuple(self.pa_config[:2]), 22)
        return self.power_dbm

    def _raise(self, flags):
        self.irq |= flags & self.irq_mask

    # ------------------------------------------------------------ pins

    def busy(self, vt):
        """BUSY's level: high in SLEEP, in reset, and while a command is processed."""
        if self.fault == "nack":
            return 0
        if self.fault == "stuck" or not self._nreset or self.mode == SLEEP:
            return 1
        self._advance(vt)
        return 1 if vt < self._busy_until else 0

    def dio1(self, vt):
        if self.fault == "nack" or not self._nreset or self.mode == SLEEP:
            return 0
        self._advance(vt)
        return 1 if self.irq & self.dio_masks[0] else 0

    def _select(self, value, vt):
        value = 1 if value else 0
        self._advance(vt)
        if value == 0 and self._nss == 1:
            self._txn = bytearray()
            if self.mode == SLEEP and self._nreset and self.fault != "nack":
                self._wake(vt)
        elif value == 1 and self._nss == 0:
            txn, self._txn = self._txn, None
            if txn:
                self._execute(bytes(txn), vt)
        self._nss = value
        self._advance(vt)

    def _wake(self, vt):
        """Section 8.2.2: a falling NSS wakes the chip; BUSY stays high until it is in
        STDBY_RC. Bytes clocked meanwhile are lost."""
        if self.warm:
            self.mode = STDBY_RC
            self._busy_until = vt + WAKE_WARM_US
        else:
            self._power_on()
            self._busy_until = vt + WAKE_COLD_US
        self.warm = False

    def _reset_pin(self, value, vt):
        value = 1 if value else 0
        self._vt = max(self._vt, vt)
        if self._nreset == 1 and value == 0:
            self._reset_low_at = vt
            if self.air is not None:
                self.air.stop_listening(self, vt)
        elif self._nreset == 0 and value == 1:
            if self._reset_low_at is not None and vt - self._reset_low_at < RESET_MIN_LOW_US:
                self.errors.append("NRESET pulse of %d us ignored (needs %d us)"
                                   % (vt - self._reset_low_at, RESET_MIN_LOW_US))
            else:
                self._power_on()
                self._busy_until = vt + RESET_READY_US
        self._nreset = value

    # ------------------------------------------------------------ SPI

    def transfer(self, data, vt):
        """One SPI exchange while NSS is low: returns what the chip drove on MISO."""
        self._vt = max(self._vt, vt)
        self._advance(vt)
        out = bytearray(len(data))
        if self.fault in ("nack", "stuck") or self._nss or not self._nreset:
            return bytes(out)  # nobody drives MISO: it reads low
        if self._txn is None:
            return bytes(out)  # the transaction was dropped
        if not self._txn and (self.mode == SLEEP or vt < self._busy_until):
            # Section 8.3.1: the host waits for BUSY low; the chip ignores what it clocks.
            self.errors.append("SPI transaction while BUSY high ignored")
            self._txn = None
            return bytes(out)
        for i, byte in enumerate(data):
            pos = len(self._txn)
            self._txn.append(byte)
            if pos == 0:
                self._status_out = self.status()
                out[i] = 0x00  # RFU while the opcode goes in
            else:
                out[i] = self._miso(self._txn, pos)
        return bytes(out)

    def _miso(self, txn, pos):
        """The byte the chip drives at position pos of a transaction."""
        op = txn[0]
        status = self._status_out
        if op not in READ_COMMANDS:
            return status
        skip = READ_COMMANDS[op]
        if pos <= skip + 1:
            return status  # during the address/offset, and the status byte after it
        i = pos - skip - 2
        if op == OP_READ_REGISTER:
            return self.regs.get(((txn[1] << 8) | txn[2]) + i, 0)
        if op == OP_READ_BUFFER:
            return self.buffer[(txn[1] + i) & 0xFF]
        data = {
            OP_GET_IRQ_STATUS: (self.irq >> 8, self.irq & 0xFF),
            OP_GET_RX_BUFFER_STATUS: (self.rx_length, self.rx_start_ptr),
            OP_GET_PACKET_STATUS: self.packet_status,
            OP_GET_RSSI_INST: (self._rssi_inst(),),
            OP_GET_DEVICE_ERRORS: (self.device_errors >> 8, self.device_errors & 0xFF),
            OP_GET_PACKET_TYPE: (self.packet_type,),
            OP_GET_STATS: tuple(b for n in self.stats for b in ((n >> 8) & 0xFF, n & 0xFF)),
        }.get(op, ())
        return data[i] if i < len(data) else status

    def _rssi_inst(self):
        """GetRssiInst (13.5.4): -x/2 dBm of what is on the channel now."""
        s = Settings(self)
        if s.bw_khz is None:
            return 0xFF
        power = 10 ** (noise_floor_dbm(s.bw_khz) / 10)
        if self.air is not None:
            for f in self.air.overlapping(self._vt, self._vt + 1):
                if f.radio is not self and abs(f.freq_hz - s.freq_hz) < s.bw_khz * 250:
                    loss = self.air.path_loss.loss_db(f.position, self.position)
                    power += 10 ** ((f.power_dbm - loss) / 10)
        return max(0, min(255, round(-2 * 10 * math.log10(power))))

    # ------------------------------------------------------------ commands

    def _execute(self, txn, vt):
        """NSS rose: the chip executes the command and holds BUSY meanwhile."""
        op, params = txn[0], txn[1:]
        self._busy_until = vt + COMMAND_BUSY_US
        if op in READ_COMMANDS:
            # Reads leave the command status as it was: a processing error stays until
            # the next command that executes (as seen on silicon), TxDone's 6 stays too.
            self.commands.append((vt, op, params))
            return
        need = WRITE_PARAMS.get(op)
        if need is None:
            self.errors.append("unknown opcode 0x%02X" % op)
            self.cmd_status = CMD_PROCESSING_ERROR
            return
        if len(params) < need and op != OP_RESET_STATS:
            self.errors.append("opcode 0x%02X with %d parameter bytes, needs %d"
                               % (op, len(params), need))
            self.cmd_status = CMD_PROCESSING_ERROR
            return
        self.commands.append((vt, op, params))
        self.cmd_status = CMD_OK
        problem = self._command(op, params, vt)
        if problem:
            self.errors.append(problem)
            self.cmd_status = CMD_EXEC_FAILURE

    def _command(self, op, p, vt):
        """Run one write command; returns why it failed to execute, or None."""
        if op == OP_SET_STANDBY:
            if self.mode in (RX, TX) or self._cad_end is not None:
                self._stop_activity(vt)
            target = STDBY_XOSC if p[0] & 0x01 else STDBY_RC
            if target == STDBY_XOSC and self.mode == STDBY_RC:
                self._busy_until = vt + TO_XOSC_US
            self.mode = target
        elif op == OP_SET_SLEEP:
            if self.mode not in (STDBY_RC, STDBY_XOSC):
                return "SetSleep from %s (only from STDBY)" % MODE_NAMES[self.mode]
            self.warm = bool(p[0] & 0x04)
            self.mode = SLEEP
            if not self.warm:
                self.buffer = bytearray(BUFFER_SIZE)
        elif op == OP_SET_FS:
            if self.mode in (RX, TX):
                self._stop_activity(vt)
            self._busy_until = vt + TO_FS_US.get(self.mode, TO_FS_US[STDBY_RC])
            self.mode = FS
        elif op == OP_SET_TX:
            return self._start_tx(int.from_bytes(p[:3], "big"), vt)
        elif op == OP_SET_RX:
            return self._start_rx(int.from_bytes(p[:3], "big"), vt)
        elif op == OP_SET_CAD:
            return self._start_cad(vt)
        elif op == OP_WRITE_REGISTER:
            addr = (p[0] << 8) | p[1]
            for i, value in enumerate(p[2:]):
                self.regs[addr + i] = value
        elif op == OP_WRITE_BUFFER:
            for i, value in enumerate(p[1:]):
                self.buffer[(p[0] + i) & 0xFF] = value
        elif op == OP_SET_BUFFER_BASE_ADDRESS:
            self.tx_base, self.rx_base = p[0], p[1]
        elif op == OP_SET_DIO_IRQ_PARAMS:
            self.irq_mask = ((p[0] << 8) | p[1]) & 0x03FF
            self.dio_masks = [((p[i] << 8) | p[i + 1]) & 0x03FF for i in (2, 4, 6)]
        elif op == OP_CLEAR_IRQ_STATUS:
            self.irq &= ~((p[0] << 8) | p[1]) & 0xFFFF
        elif op == OP_SET_RF_FREQUENCY:
            self.rf_freq = int.from_bytes(p[:4], "big")
        elif op == OP_SET_PACKET_TYPE:
            if self.mode not in (STDBY_RC, STDBY_XOSC):
                return "SetPacketType outside STDBY"
            self.packet_type = p[0]
        elif op == OP_SET_MODULATION_PARAMS:
            if self.packet_type == PACKET_TYPE_LORA:
                sf, bw, cr, ldro = p[0], p[1], p[2], p[3]
                if not 5 <= sf <= 12 or bw not in BANDWIDTHS_KHZ or not 1 <= cr <= 4:
                    self.cmd_status = CMD_PROCESSING_ERROR
                    self.errors.append("LoRa modulation SF %d, BW 0x%02X, CR %d refused"
                                       % (sf, bw, cr))
                    return None
                self.modulation = (sf, bw, cr, ldro & 0x01)
        elif op == OP_SET_PACKET_PARAMS:
            if self.packet_type == PACKET_TYPE_LORA:
                self.packet_params = ((p[0] << 8) | p[1], p[2] & 0x01, p[3], p[4] & 0x01,
                                      p[5] & 0x01)
        elif op == OP_SET_TX_PARAMS:
            power = p[0] - 256 if p[0] > 127 else p[0]
            hp = self.variant == "SX1262" and (self.pa_config is None or self.pa_config[2] == 0)
            low, high = (-9, 22) if hp else (-17, 15)
            if not low <= power <= high:
                self.errors.append("TX power %d dBm clamped to %d..%d" % (power, low, high))
            self.power_dbm = max(low, min(high, power))
            self.ramp = p[1]
        elif op == OP_SET_PA_CONFIG:
            self.pa_config = tuple(p[:4])
        elif op == OP_SET_RX_TX_FALLBACK_MODE:
            self.fallback = {0x40: FS, 0x30: STDBY_XOSC}.get(p[0], STDBY_RC)
        elif op == OP_STOP_TIMER_ON_PREAMBLE:
            self.stop_on_preamble = bool(p[0])
        elif op == OP_SET_LORA_SYMB_NUM_TIMEOUT:
            self.symb_num_timeout = p[0]
        elif op == OP_SET_CAD_PARAMS:
            self.cad_params = (p[0], p[1], p[2], p[3], int.from_bytes(p[4:7], "big"))
        elif op == OP_CALIBRATE:
            self._busy_until = vt + CALIBRATE_US
        elif op == OP_CALIBRATE_IMAGE:
            self._busy_until = vt + CALIBRATE_US
        elif op == OP_CLEAR_DEVICE_ERRORS:
            self.device_errors = 0
        elif op == OP_RESET_STATS:
            self.stats = [0, 0, 0]
        # SetRegulatorMode, SetDIO2AsRfSwitchCtrl, SetDIO3AsTCXOCtrl: recorded only.
        return None

    def _stop_activity(self, vt):
        if self.mode == RX:
            self._stop_rx(vt)
        self._tx = None
        self._tx_timeout_at = None
        self._cad_end = None

    def _fall_back(self, vt):
        """Back to the fallback mode after TX, a single RX, a timeout or a CAD."""
        self.mode = self.fallback

    # ------------------------------------------------------------ TX

    def _starting(self, command, modes=(STDBY_RC, STDBY_XOSC, FS)):
        """The settings SetTx, SetRx or SetCad starts with, and why it cannot (or None): a
        setting the modem cannot use, or a mode it is not taken from."""
        settings = Settings(self)
        problem = settings.valid()
        if self.mode not in modes:
            problem = "%s from %s" % (command, MODE_NAMES[self.mode])
        return settings, problem

    def _start_tx(self, timeout, vt):
        settings, problem = self._starting("SetTx")
        if problem:
            return problem
        start = vt + TO_TX_US[self.mode]
        self._busy_until = start
        length = settings.payload_length
        payload = bytes(self.buffer[(self.tx_base + i) & 0xFF] for i in range(length))
        frame = Frame(self.label, payload, start, settings, position=self.position)
        self.mode = TX
        self._tx = frame
        self._tx_timeout_at = vt + timeout * RTC_STEP_US if timeout else None
        self.sent.append(frame)
        if self.air is not None:
            self.air.transmit(self, frame)
        return None

    # ------------------------------------------------------------ RX

    def _start_rx(self, timeout, vt):
        settings, problem = self._starting("SetRx", (STDBY_RC, STDBY_XOSC, FS, RX))
        if problem:
            return problem
        if self.mode == RX:
            self._stop_rx(vt)
            ready = vt + TO_RX_US[FS]
        else:
            ready = vt + TO_RX_US[self.mode]
        if settings.rx_inverted and self.regs.get(REG_IQ_POLARITY, 0x0D) & 0x04:
            # Erratum 15.4: with inverted IQ, bit 2 of 0x0736 must be cleared, or longer
            # packets may be lost. Recorded; the model still hears them.
            self.errors.append("RX with inverted IQ and 0x0736 bit 2 set (erratum 15.4)")
        self._busy_until = ready
        self.mode = RX
        self._rx_start = ready
        self._rx_settings = settings
        self._rx_continuous = timeout == RX_CONTINUOUS
        self._rx_timeout_at = (ready + timeout * RTC_STEP_US
                               if timeout and not self._rx_continuous else None)
        self._rx_frame = None
        self._preamble_seen = self._header_seen = False
        if self.air is not None:
            self.air.listen(self, settings, vt)
        return None

    def _stop_rx(self, vt):
        self._rx_start = None
        self._rx_frame = None
        self._preamble_seen = self._header_seen = False
        if self.air is not None:
            self.air.stop_listening(self, vt)

    def _candidates(self, vt):
        if self.air is not None:
            return self.air.candidates(self, self._rx_settings, self._rx_start, vt)
        s = self._rx_settings
        return [f for f, *_ in self.inbox if f.start <= vt and f.sf == s.sf
                and f.iq_inverted == s.rx_inverted and f.sync_word == s.sync_word
                and abs(f.freq_hz - s.freq_hz) < s.bw_khz * 250]

    def _rx_timeout(self, vt):
        self._raise(IRQ_TIMEOUT)
        self._stop_rx(vt)
        self._fall_back(vt)

    def _step_rx(self, vt):
        s = self._rx_settings
        symbol = s.symbol_us()
        symb_deadline = (self._rx_start + self.symb_num_timeout * symbol
                         if self.symb_num_timeout and not self._rx_continuous else None)
        if self._rx_frame is None:
            if vt < self._rx_start:
                return
            for frame in self._candidates(vt):
                if frame.id in self._heard:
                    continue
                if frame.start + (frame.preamble - PREAMBLE_LOCK_SYMBOLS) * frame.symbol_us \
                        < self._rx_start:
                    continue  # too little preamble left when the receiver started
                if frame.implicit != s.implicit:
                    continue
                self._heard.add(frame.id)
                self._rx_frame = frame
                break
        frame = self._rx_frame
        t_out = self._rx_timeout_at
        if frame is None or (not self._preamble_seen and vt < frame.lock_time()):
            # Nothing locked yet: the timers run.
            if t_out is not None and vt >= t_out:
                self._rx_timeout(vt)
            elif symb_deadline is not None and vt >= symb_deadline \
                    and (frame is None or frame.start > symb_deadline):
                self._rx_timeout(vt)
            return
        if not self._preamble_seen:
            if (symb_deadline is not None and frame.start > symb_deadline) \
                    or (self.stop_on_preamble and t_out is not None
                        and t_out < frame.lock_time()):
                self._rx_timeout(vt)
                return
            if not self._locks(frame):
                self._rx_frame = None  # never locked: the receiver keeps searching
                self._step_rx(vt)
                return
            self._preamble_seen = True
            self._raise(IRQ_PREAMBLE_DETECTED)
            if self.stop_on_preamble:
                self._rx_timeout_at = t_out = None
        if not self._header_seen:
            if t_out is not None and vt >= t_out and t_out < frame.header_time():
                self._rx_timeout(vt)
                return
            if vt < frame.header_time():
                return
            self._header_seen = True
            self._rx_timeout_at = None  # the timer stops at the sync word / header
            if not frame.implicit:
                self._raise(IRQ_HEADER_VALID)
        if vt < frame.end:
            return
        self._rx_frame = None
        self._preamble_seen = self._header_seen = False
        status, rssi, snr = self._fate(frame)
        if status in ("delivered", "corrupt"):
            self._deliver(frame, rssi, snr, status == "corrupt")
            if not self._rx_continuous:
                self._stop_rx(vt)
                self._fall_back(vt)
        # Heard at first but lost: the receiver keeps listening (its timer stopped).

    def _deliver(self, frame, rssi, snr, corrupt):
        payload = bytearray(frame.payload)
        if corrupt:
            for i in range(0, len(payload), 3):
                payload[i] ^= 0x5A  # symbols decoded wrong
        if frame.implicit:
            payload = payload[:self._rx_settings.payload_length]
        for i, byte in enumerate(payload):
            self.buffer[(self.rx_base + i) & 0xFF] = byte
        self.rx_length = len(payload)
        self.rx_start_ptr = self.rx_base
        snr_q = max(-128, min(127, round(snr * 4)))
        noise = rssi - snr
        total = 10 * math.log10(10 ** (rssi / 10) + 10 ** (noise / 10))
        self.packet_status = (max(0, min(255, round(-2 * total))), snr_q & 0xFF,
                              max(0, min(255, round(-2 * rssi))))
        flags = IRQ_RX_DONE
        self.stats[0] += 1
        if corrupt and frame.crc:
            flags |= IRQ_CRC_ERR
            self.stats[1] += 1
        self.cmd_status = CMD_DATA_AVAILABLE
        self._raise(flags)
        self.received.append((frame, rssi, snr, corrupt))

    # ------------------------------------------------------------ CAD

    def _start_cad(self, vt):
        settings, problem = self._starting("SetCad")
        if problem:
            return problem
        start = vt + TO_RX_US[self.mode]
        self._busy_until = start
        self.mode = RX
        self._cad_end = start + CAD_SYMBOLS.get(self.cad_params[0], 2) * settings.symbol_us()
        self._cad_frame = None
        if self.air is not None:
            self._cad_frame = self.air.activity(self, settings, start, self._cad_end)
        else:
            self._cad_frame = next((f for f, *_ in self.inbox
                                    if f.start < self._cad_end and f.end > start), None)
        return None

    # ------------------------------------------------------------ time

    def _advance(self, vt):
        """Bring the chip's state to virtual time vt."""
        self._vt = max(self._vt, vt)
        if not self._nreset:
            return  # held in reset: nothing runs
        if self.mode == TX and self._tx is not None:
            if self._tx_timeout_at is not None and vt >= self._tx_timeout_at \
                    and (self.fault == "no_txdone" or self._tx_timeout_at < self._tx.end):
                self._tx = None
                self._raise(IRQ_TIMEOUT)
                self._fall_back(vt)
            elif vt >= self._tx.end and self.fault != "no_txdone":
                self._tx = None
                self._raise(IRQ_TX_DONE)
                self.cmd_status = CMD_TX_DONE
                self._fall_back(vt)
                if self.air is not None:
                    self.air.settle(self, vt)
        elif self.mode == RX and self._cad_end is not None:
            if vt >= self._cad_end:
                self._cad_end = None
                detected = self._cad_frame is not None
                self._raise(IRQ_CAD_DONE | (IRQ_CAD_DETECTED if detected else 0))
                self._fall_back(vt)
                if detected and self.cad_params[3] == 0x01:  # CAD_RX: listen on
                    self.mode = STDBY_RC
                    self._start_rx(self.cad_params[4], vt)
        elif self.mode == RX and self._rx_start is not None:
            self._step_rx(vt)

    def inject(self, payload, *, rssi=-80.0, snr=9.0, corrupt=False, start=None, freq_hz=None,
               sf=None, bw_khz=None, cr=1, crc=True, preamble=8, iq_inverted=None,
               sync_word=None):
        """Put a frame on this radio's receiver without an air (tests): it starts at `start`
        (default: now) with the radio's current modem settings unless given."""
        s = Settings(self)
        s.freq_hz = freq_hz or s.freq_hz
        s.sf, s.bw_khz, s.cr, s.crc, s.preamble = sf or s.sf, bw_khz or s.bw_khz, cr, crc, preamble
        s.implicit = False
        if iq_inverted is not None:
            s.tx_inverted = iq_inverted
        if sync_word is not None:
            s.sync_word = sync_word
        frame = Frame("injected", payload, self._vt if start is None else start, s)
        frame.id = "inj%d" % len(self.inbox)
        self.inbox.append((frame, rssi, snr, "corrupt" if corrupt else False))
        return frame
