# Semtech SX1262 LoRa transceiver, command level over SPI (Semtech SX1261/2 datasheet,
# rev. 2.1, DS.SX1261-2.W.APP). The public interface is net/sx127x.py's, so the
# node's link and the bridge drive either chip.
#
# A non-blocking core (start_send / start_recv / poll); the waits over it (sending,
# receiving and their blocking wrappers) are net/radio.py's. The DIO1 interrupt handler
# only notes the time and sets a flag; poll() reads the chip's IRQ status when DIO1 is up.
# Every wait has a timeout, BUSY included.
#
# Every command is one SPI transaction (NSS low, opcode, parameters, NSS high: 8.2, 11),
# done as a single write_readinto once BUSY is low (8.3.1). Get commands, ReadRegister and
# ReadBuffer answer with a status byte before their data (13.2.2, 13.2.4, 13.5).
from micropython import const
import time

from net.radio import (BANDWIDTHS_HZ, RX_CRC_ERROR, RX_DONE, TX_DONE, Radio,  # noqa: F401
                       RadioError, RadioTimeout)

# Opcodes (datasheet 11; each command's section alongside).
_SET_SLEEP = const(0x84)          # 13.1.1
_SET_STANDBY = const(0x80)        # 13.1.2: 0 STDBY_RC
_SET_TX = const(0x83)             # 13.1.4: 24-bit timeout, 0 = none (back to STDBY_RC)
_SET_RX = const(0x82)             # 13.1.5: 0xFFFFFF = continuous
_SET_REGULATOR_MODE = const(0x96)  # 13.1.11: 1 = DC-DC
_CALIBRATE = const(0x89)          # 13.1.12: 0x7F all blocks
_CALIBRATE_IMAGE = const(0x98)    # 13.1.13
_SET_PA_CONFIG = const(0x95)      # 13.1.14
_WRITE_REGISTER = const(0x0D)     # 13.2.1
_READ_REGISTER = const(0x1D)      # 13.2.2
_WRITE_BUFFER = const(0x0E)       # 13.2.3
_READ_BUFFER = const(0x1E)        # 13.2.4
_SET_DIO_IRQ_PARAMS = const(0x08)  # 13.3.1
_GET_IRQ_STATUS = const(0x12)     # 13.3.3
_CLEAR_IRQ_STATUS = const(0x02)   # 13.3.4
_SET_DIO2_RF_SWITCH = const(0x9D)  # 13.3.5
_SET_DIO3_TCXO = const(0x97)      # 13.3.6
_SET_RF_FREQUENCY = const(0x86)   # 13.4.1: RfFreq = f * 2^25 / 32 MHz
_SET_PACKET_TYPE = const(0x8A)    # 13.4.2: 1 = LoRa
_SET_TX_PARAMS = const(0x8E)      # 13.4.4
_SET_MODULATION_PARAMS = const(0x8B)  # 13.4.5
_SET_PACKET_PARAMS = const(0x8C)  # 13.4.6
_SET_BUFFER_BASE = const(0x8F)    # 13.4.8
_GET_STATUS = const(0xC0)         # 13.5.1
_GET_RX_BUFFER_STATUS = const(0x13)  # 13.5.2: status, PayloadLengthRx, RxStartBufferPointer
_GET_PACKET_STATUS = const(0x14)  # 13.5.3: status, RssiPkt, SnrPkt, SignalRssiPkt
_CLEAR_DEVICE_ERRORS = const(0x07)  # 13.6.2

# Registers (datasheet 12, table 12-1, and the errata in 15).
_IQ_POLARITY = const(0x0736)      # 15.4: bit 2 set for standard IQ, cleared for inverted
_SYNC_WORD = const(0x0740)        # 0x0740/0x0741, reset value 0x14 0x24 (private network)
_TX_MODULATION = const(0x0889)    # 15.1: bit 2 cleared at 500 kHz, set at other bandwidths
_TX_CLAMP = const(0x08D8)         # 15.2: |= 0x1E after reset (SX1262 only)

# IRQ bits (13.3.1, table 13-29).
_IRQ_TX_DONE = const(0x0001)
_IRQ_RX_DONE = const(0x0002)
_IRQ_HEADER_VALID = const(0x0010)
_IRQ_HEADER_ERR = const(0x0020)
_IRQ_CRC_ERR = const(0x0040)
_IRQ_TIMEOUT = const(0x0200)
# HeaderValid only latches in the status (header_seen() reads it): on DIO1 it would wake
# poll() for nothing in the middle of every packet.
_IRQ_MASK = const(0x0273)
_DIO1_MASK = const(0x0263)

_BUSY_MS = const(50)      # BUSY's longest stretch: calibrating all blocks, 3.5 ms (13.1.12)
_TCXO_DELAY = const(320)  # 13.3.6: 5 ms in steps of 15.625 us for the TCXO to settle
_RAMP_200US = const(0x04)  # 13.4.4: RampTime code 4, 200 us

PRIVATE_SYNC_WORD = const(0x12)   # 0x34 is LoRaWAN's public network
_BW_CODES = b"\x00\x08\x01\x09\x02\x0a\x03\x04\x05\x06"  # 13.4.5: the LoRa BW codes, in that order
_TCXO_MV = (1600, 1700, 1800, 2200, 2400, 2700, 3000, 3300)  # 13.3.6: tcxoVoltage 0..7
# Image calibration (9.2.1, table 9-2): freq1, freq2 for 430-440, 470-510, 779-787,
# 863-870 and 902-928 MHz, in 4 MHz steps that enclose each band.
_IMAGE = b"\x6b\x6f\x75\x81\xc1\xc5\xd7\xdb\xe1\xe9"
# Table 13-21, the SX1262's optimal PA settings: dBm, paDutyCycle, hpMax, SetTxParams power.
# Other powers take the +22 dBm setting with the power itself (13.4.4).
_PA = b"\x16\x04\x07\x16\x14\x03\x05\x16\x11\x02\x03\x16\x0e\x02\x02\x16"


class SX126x(Radio):
    chip = "sx1262"
    tag = "sx126x"
    sf_min = 5

    def __init__(self, spi, cs, reset, busy, dio1, *, freq_hz=868100000, sf=9, bw_hz=125000,
                 cr=5, power_dbm=14, preamble=8, sync_word=PRIVATE_SYNC_WORD, tcxo_mv=0,
                 dio2_rf_switch=True):
        self._spi = spi
        self._cs = cs
        self._busy = busy
        self._dio1 = dio1
        self._buf = bytearray(258)   # ReadBuffer: opcode, offset, status + up to 255 bytes
        self._mv = memoryview(self._buf)
        c = self._c = bytearray(9)   # a command: opcode + up to 8 parameters
        v = memoryview(c)
        self._v = [v[:n + 1] for n in range(9)]  # _v[n]: the opcode and n bytes after it
        self._wake = bytearray(2)
        self._irq_us = 0
        self._flag = False
        self._asleep = False
        self._image = 0
        self._plen = 0xFF
        self.packet = None          # the last poll() RX_DONE: (payload, rssi, snr_x4, ticks_us)
        self.done_us = 0            # when the last event's DIO1 edge came (time.ticks_us)
        self.on_irq = None          # also called by the DIO1 handler: an asyncio flag's set
        self.invert_iq = False
        cs.init(cs.OUT, value=1)
        busy.init(busy.IN)
        # 8.1: hold NRESET low for at least 100 us; the chip then starts and calibrates
        # with BUSY high, and takes commands once BUSY is low (every command waits for it).
        reset.init(reset.OUT, value=0)
        time.sleep_us(100)
        reset(1)
        time.sleep_ms(1)
        sw = self._cmd(5, _READ_REGISTER, _SYNC_WORD >> 8, _SYNC_WORD & 0xFF)
        sw = sw[4] << 8 | sw[5]
        if sw != 0x1424:  # the reset value of the LoRa sync word registers (table 12-1)
            raise RadioError("sx126x: sync word register reads 0x%04x, not 0x1424: no "
                             "SX1261/2 on this SPI bus and chip select" % sw)
        self._cmd(1, _SET_STANDBY, 0)
        if tcxo_mv:
            if tcxo_mv not in _TCXO_MV:
                raise ValueError("sx126x: TCXO voltage %r mV is not one of %s"
                                 % (tcxo_mv, _TCXO_MV))
            self._cmd(4, _SET_DIO3_TCXO, _TCXO_MV.index(tcxo_mv), 0, _TCXO_DELAY >> 8,
                      _TCXO_DELAY & 0xFF)
        # 13.1.12: calibrate again, now with the TCXO running (the one at start-up ran
        # without it and failed, leaving XOSC_START_ERR, cleared after).
        self._cmd(1, _CALIBRATE, 0x7F)
        if tcxo_mv:
            self._cmd(2, _CLEAR_DEVICE_ERRORS, 0, 0)
        self._cmd(1, _SET_REGULATOR_MODE, 1)
        if dio2_rf_switch:
            self._cmd(1, _SET_DIO2_RF_SWITCH, 1)  # DIO2 high in TX drives the module's switch
        self._cmd(1, _SET_PACKET_TYPE, 1)  # first, before frequency and modulation (13.4.2)
        self._cmd(2, _SET_BUFFER_BASE, 0, 0)
        self._cmd(8, _SET_DIO_IRQ_PARAMS, _IRQ_MASK >> 8, _IRQ_MASK & 0xFF,
                  _DIO1_MASK >> 8, _DIO1_MASK & 0xFF, 0, 0, 0, 0)
        # Table 12-1: an SX127x sync word 0xXY is 0xX4 0xY4 here (0x12 -> 0x1424).
        self._cmd(4, _WRITE_REGISTER, _SYNC_WORD >> 8, _SYNC_WORD & 0xFF,
                  (sync_word & 0xF0) | 4, (sync_word & 0x0F) << 4 | 4)
        self._set_bits(_TX_CLAMP, 0xFF, 0x1E)  # 15.2: the PA clamps too early on a mismatch
        self.configure(freq_hz=freq_hz, sf=sf, bw_hz=bw_hz, cr=cr, power_dbm=power_dbm,
                       preamble=preamble, invert_iq=False)
        dio1.init(dio1.IN)
        dio1.irq(handler=self._on_irq, trigger=dio1.IRQ_RISING)

    # -------------------------------------------------------------- commands

    def _xfer(self, mv):
        if self._asleep:
            # 8.2.2: a falling NSS wakes the chip; it ignores what comes with it and holds
            # BUSY high until it is in STDBY_RC.
            self._asleep = False
            w = self._wake
            w[0] = _GET_STATUS
            w[1] = 0
            self._cs(0)
            try:
                self._spi.write_readinto(w, w)
            finally:
                self._cs(1)
        busy = self._busy
        if busy.value():
            start = time.ticks_ms()
            while busy.value():
                if time.ticks_diff(time.ticks_ms(), start) > _BUSY_MS:
                    raise RadioError("sx126x: BUSY still high after %d ms: no SX1261/2 on "
                                     "these pins, or it hangs" % _BUSY_MS)
        self._cs(0)
        try:
            self._spi.write_readinto(mv, mv)
        finally:
            self._cs(1)

    def _cmd(self, n, op, a=0, b=0, c=0, d=0, e=0, f=0, g=0, h=0):
        """Opcode and n parameter bytes (NOPs where the chip answers); returns the buffer
        with the chip's answer, byte for byte."""
        x = self._c
        x[0] = op
        x[1] = a
        x[2] = b
        x[3] = c
        x[4] = d
        x[5] = e
        x[6] = f
        x[7] = g
        x[8] = h
        self._xfer(self._v[n])
        return x

    def _set_bits(self, reg, keep, add):
        """Read a register, keep some bits, add others, write it back."""
        v = self._cmd(4, _READ_REGISTER, reg >> 8, reg & 0xFF)[4]
        self._cmd(3, _WRITE_REGISTER, reg >> 8, reg & 0xFF, v & keep | add)

    def _irq(self):
        x = self._cmd(3, _GET_IRQ_STATUS)
        return x[2] << 8 | x[3]

    # -------------------------------------------------------------- settings

    def configure(self, *, freq_hz=None, sf=None, bw_hz=None, cr=None, power_dbm=None,
                  preamble=None, invert_iq=None):
        """Change any of the modem settings; the radio must not be sending. cr is the
        denominator of the coding rate, 5..8 for 4/5..4/8."""
        self.standby()
        if freq_hz is not None:
            if not 150000000 <= freq_hz <= 960000000:
                raise ValueError("sx126x: frequency %r Hz outside 150-960 MHz" % (freq_hz,))
            self.freq_hz = freq_hz
            self._frequency(freq_hz)
        self._modem(sf, bw_hz, cr, preamble)
        if power_dbm is not None:
            self._power(power_dbm)
        if invert_iq is not None:
            self.invert_iq = bool(invert_iq)
        # 13.4.5: SF, bandwidth code, coding rate 1..4, and LowDataRateOptimize, which
        # 6.1.1 wants on once a symbol lasts 16 ms or more (SF11 and SF12 at 125 kHz).
        ldro = (1 << self.sf) * 1000 >= 16 * self.bw_hz
        self._cmd(4, _SET_MODULATION_PARAMS, self.sf,
                  _BW_CODES[BANDWIDTHS_HZ.index(self.bw_hz)], self.cr - 4, 1 if ldro else 0)
        self._packet(0xFF)

    def _frequency(self, f):
        # 9.2.1: the image rejection is calibrated for one band at a time; only a change of
        # band costs a calibration (RX2 at 869.525 MHz shares 863-870 with the uplinks).
        f1 = f // 4000000           # outside the table: the 4 MHz step around f
        f2 = (f + 3999999) // 4000000
        for i in range(0, 10, 2):
            if _IMAGE[i] <= f1 and f2 <= _IMAGE[i + 1]:
                f1 = _IMAGE[i]
                f2 = _IMAGE[i + 1]
                break
        if self._image != f1 << 8 | f2:
            self._cmd(2, _CALIBRATE_IMAGE, f1, f2)
            self._image = f1 << 8 | f2
        # RfFreq = f * 2^25 / 32e6 = f * 2^14 / 15625, split so every step stays a small
        # integer (under 2^30 up to 960 MHz), rounded to the nearest step.
        frf = ((f // 15625) << 14) + (((f % 15625) << 14) + 7812) // 15625
        self._cmd(4, _SET_RF_FREQUENCY, frf >> 24, (frf >> 16) & 0xFF, (frf >> 8) & 0xFF,
                  frf & 0xFF)

    def _power(self, dbm):
        if not -9 <= dbm <= 22:
            raise ValueError("sx126x: power %r dBm is not -9..22" % (dbm,))
        duty, hp_max, power = 4, 7, dbm
        for i in range(0, len(_PA), 4):
            if _PA[i] == dbm:
                duty, hp_max, power = _PA[i + 1], _PA[i + 2], _PA[i + 3]
        # 13.1.14 before 13.4.4: SetPaConfig (deviceSel 0: the SX1262's high-power PA) also
        # sets the over-current limit, 140 mA.
        self._cmd(4, _SET_PA_CONFIG, duty, hp_max, 0, 1)
        self._cmd(2, _SET_TX_PARAMS, power & 0xFF, _RAMP_200US)
        self.power_dbm = dbm

    def _packet(self, length):
        # 13.4.6: preamble, explicit header (0), payload length, CRC on (1), InvertIQ.
        self._plen = length
        p = self.preamble
        self._cmd(6, _SET_PACKET_PARAMS, p >> 8, p & 0xFF, 0, length, 1,
                  1 if self.invert_iq else 0)
        # 15.4: with the chip's own IQ setting alone, inverted-IQ packets get lost.
        if self.invert_iq:
            self._set_bits(_IQ_POLARITY, 0xFB, 0)
        else:
            self._set_bits(_IQ_POLARITY, 0xFF, 0x04)

    def standby(self):
        self._cmd(1, _SET_STANDBY, 0)

    def sleep(self):
        """Sleep with warm start (13.1.1): the settings stay; the next command wakes it."""
        if not self._asleep:
            self.standby()  # SetSleep is taken in standby
            self._cmd(1, _SET_SLEEP, 0x04)
            self._asleep = True

    # -------------------------------------------------------------- the poll core

    def load(self, payload):
        """Put a packet in the chip's buffer, ready to go: start_send() then keys up the
        transmitter with a single command, so a timed downlink starts on time."""
        n = len(payload)
        if not 1 <= n <= 255:
            raise ValueError("sx126x: payload of %d bytes (1..255)" % n)
        self.standby()
        mv = self._mv
        mv[0] = _WRITE_BUFFER
        mv[1] = 0                   # the TX base address (SetBufferBaseAddress 0, 0)
        mv[2:n + 2] = payload
        self._xfer(mv[:n + 2])
        self._packet(n)
        # 15.1: before each transmission, TX modulation bit 2 per bandwidth.
        if self.bw_hz == 500000:
            self._set_bits(_TX_MODULATION, 0xFB, 0)
        else:
            self._set_bits(_TX_MODULATION, 0xFF, 0x04)
        self._cmd(2, _CLEAR_IRQ_STATUS, 0xFF, 0xFF)
        self._flag = False

    def start_send(self, payload=None):
        """Transmit payload (or the packet load() put in the buffer); poll() says TX_DONE."""
        if payload is not None:
            self.load(payload)
        self._cmd(3, _SET_TX, 0, 0, 0)  # no timeout: back to STDBY_RC after TxDone (13.1.4)

    def start_recv(self):
        """Listen continuously; poll() reports each packet."""
        self.standby()
        if self._plen != 0xFF:
            self._packet(0xFF)      # a load() set the length of the packet it sent
        self._cmd(2, _CLEAR_IRQ_STATUS, 0xFF, 0xFF)
        self._flag = False
        self._cmd(3, _SET_RX, 0xFF, 0xFF, 0xFF)

    def header_seen(self):
        """Whether a valid header has come in since the receiver started (a packet is
        arriving, or has arrived)."""
        return bool(self._irq() & (_IRQ_HEADER_VALID | _IRQ_RX_DONE))

    def poll(self):
        """None, TX_DONE, RX_DONE (the packet in self.packet) or RX_CRC_ERROR."""
        if not self._flag:
            if not self._dio1.value():
                return None
            self._irq_us = time.ticks_us()  # the edge came before the handler was set
        self._flag = False
        self.done_us = self._irq_us
        flags = self._irq()
        self._cmd(2, _CLEAR_IRQ_STATUS, flags >> 8, flags & 0xFF)
        if flags & _IRQ_TX_DONE:
            return TX_DONE
        if not flags & (_IRQ_RX_DONE | _IRQ_CRC_ERR | _IRQ_HEADER_ERR):
            return None
        x = self._cmd(4, _GET_PACKET_STATUS)
        rssi = -((x[2] + 1) >> 1)   # 13.5.3: RssiPkt = -2 x dBm; -95.5 dBm gives -96
        snr = x[3]                  # SnrPkt: two's complement, quarter dB steps
        if snr > 127:
            snr -= 256
        # Explicit header: a header that failed its own CRC (HeaderErr) or a payload that
        # failed the payload CRC (CrcErr) are both a CRC failure to the caller.
        if flags & (_IRQ_CRC_ERR | _IRQ_HEADER_ERR):
            self.packet = (None, rssi, snr, self.done_us)
            return RX_CRC_ERROR
        x = self._cmd(3, _GET_RX_BUFFER_STATUS)
        n = x[2]
        mv = self._mv
        mv[0] = _READ_BUFFER
        mv[1] = x[3]                # RxStartBufferPointer
        mv[2] = 0
        mv = mv[:n + 3]
        self._xfer(mv)
        self.packet = (bytes(mv[3:]), rssi, snr, self.done_us)
        return RX_DONE


def from_config(spi, c):
    """The SX126x a node's `lora` section names (net/lora.py's make_radio), with a Heltec
    WiFi LoRa 32 V3's BUSY and DIO1 pins, 1.8 V TCXO and DIO2 antenna switch by default."""
    from machine import Pin
    switch = c.get("dio2_rf_switch", True)
    if switch not in (True, False):
        raise ValueError("lora.dio2_rf_switch %r is not true or false" % (switch,))
    return SX126x(spi, Pin(c["cs"]), Pin(c["reset"]), Pin(c.get("busy", 13)),
                  Pin(c.get("dio1", 14)), freq_hz=c["channels"][0], sf=c["sf"], bw_hz=c["bw_hz"],
                  cr=c["cr"], power_dbm=c["power_dbm"], preamble=c["preamble"],
                  tcxo_mv=c.get("tcxo_mv", 1800), dio2_rf_switch=switch)
