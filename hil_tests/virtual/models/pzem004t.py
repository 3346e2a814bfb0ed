"""Peacefair PZEM-004T v3.0 power meter (Modbus RTU, 9600 8N1) measuring an LED street lamp
dimmed by a 1-10 V driver, from the meter's user manual and the usual driver behaviour.

Meter (manual sections 2.2-2.6): slave address 0x01..0xF7, 0xF8 answered by any meter;
function 0x04 reads input registers 0x0000..0x0009 (voltage 0.1 V, current 0.001 A as two
registers low word first, power 0.1 W low word first, energy 1 Wh low word first, frequency
0.1 Hz, power factor 0.01, alarm 0xFFFF/0x0000); 0x03 reads the holding registers 0x0001
(power alarm threshold, 1 W) and 0x0002 (slave address); 0x06 writes one; 0x42 resets the
energy (the reply echoes the request). An error reply is address, function | 0x80, an
exception code (1 illegal function, 2 illegal address, 3 illegal data, 4 slave error), CRC.
CRC-16/MODBUS, low byte first. A request with a bad CRC or another address gets no reply.
The manual gives no turnaround time: this model answers 20 ms after the request's last
byte; bytes take 10 bits at 9600 Bd.

Lamp: the dimming PWM (registered here under ("pwm", pin)) is filtered to 0-10 V; the
driver is off below 0.6 V (dim-to-off, standby 0.3 W), otherwise gives a light output of
max(10 %, V / 10 V) and draws full_w × (0.05 + 0.95 × output) (driver losses that do not
dim). Ground truth: `energy_wh` integrates the power over virtual time exactly, piecewise
between the instants the model learns of a change (a PWM write, a bus request, or
`fail_at_us`). Mains voltage wanders around 230 V with noise.

Faults: "silent" (no reply: unpowered or unplugged), "crc" (the reply's CRC is corrupt),
"stuck" (the host never finishes the transaction: the watchdog must act), "stuck_value"
(the same reply frame forever), "noise" (power readings ±15 %), "exception" (exception 4,
slave error), "lamp_dead" (the LEDs are open: only the driver's standby is drawn)."""
import math
import random

from hil_tests.virtual.models import Model

GENERAL_ADDR = 0xF8
_BIT_US = 1000000 / 9600
_TURNAROUND_US = 20000
STANDBY_W = 0.3
OFF_VOLTS = 0.6
MIN_OUTPUT = 0.10
LOSS = 0.05


def crc16(data):
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(body):
    crc = crc16(body)
    return bytes(body) + bytes([crc & 0xFF, crc >> 8])


def lamp_power_w(duty_u16, full_w, alive=True):
    """What the lamp draws at a PWM duty (1-10 V interface, dim-to-off)."""
    volts = 10.0 * duty_u16 / 65535
    if volts < OFF_VOLTS or not alive:
        return STANDBY_W
    output = max(MIN_OUTPUT, min(1.0, volts / 10.0))
    return full_w * (LOSS + (1 - LOSS) * output)


class PZEM004T(Model):
    def __init__(self, uart="uart2", pwm_pin=25, full_w=60.0, address=0x01, energy_wh=0.0,
                 fail_at_us=None, volts=230.0, seed=4):
        self.uart, self.pwm_pin = uart, pwm_pin
        self.full_w = full_w            # the lamp's power at 100 % (a number)
        self.address = address
        self.alarm_w = 23000
        self.energy_wh = float(energy_wh)  # ground truth, integrated over virtual time
        self.fail_at_us = fail_at_us    # the LEDs fail open at this virtual time
        self.volts = volts
        self.duty_u16 = 0
        self.pwm_log = []               # (vt, duty_u16): every change of the dimming
        self.died_at = None             # when the model learnt that the lamp is dead
        self.requests = 0
        self.readings = []              # (vt, energy register, ground-truth Wh) per reply
        self._vt = None
        self._rx = bytearray()
        self._reply = b""
        self._reply_at = 0
        self._frozen = None
        self._rng = random.Random(seed)

    def bus_keys(self):
        return [("uart", self.uart), ("pwm", self.pwm_pin)]

    # ------------------------------------------------------------ the lamp

    def alive(self, vt):
        if self.fault == "lamp_dead":
            return False
        return self.fail_at_us is None or vt < self.fail_at_us

    def power_w(self, vt):
        return lamp_power_w(self.duty_u16, self.full_w, self.alive(vt))

    def advance(self, vt):
        """Integrate the energy up to vt with the state held since the last instant."""
        if self._vt is None or vt <= self._vt:
            self._vt = vt if self._vt is None else self._vt
            return
        if self.died_at is None and not self.alive(vt):
            self.died_at = self.fail_at_us if self.fail_at_us is not None else vt
        t = self._vt
        if self.fail_at_us is not None and t < self.fail_at_us < vt:
            self.energy_wh += self.power_w(t) * (self.fail_at_us - t) / 3.6e9
            t = self.fail_at_us
        self.energy_wh += self.power_w(t) * (vt - t) / 3.6e9
        self._vt = vt

    def pwm(self, freq, duty_u16, vt):
        self.advance(vt)
        if duty_u16 != self.duty_u16:
            self.pwm_log.append((vt, duty_u16))
        self.duty_u16 = duty_u16

    # ------------------------------------------------------------ the meter

    def _registers(self, vt):
        power = self.power_w(vt)
        if self.fault == "noise":
            power *= 1 + self._rng.uniform(-0.15, 0.15)
        else:
            power *= 1 + self._rng.gauss(0, 0.002)  # within the manual's 0.5 %
        volts = self.volts + 2.0 * math.sin(vt / 3.6e9 * 2 * math.pi) + self._rng.gauss(0, 0.4)
        pf = 0.95 if self.duty_u16 > 32768 else 0.90
        amps = power / (volts * pf) if power > 0 else 0.0
        hz = 50.0 + self._rng.gauss(0, 0.02)
        current, watts, wh = int(round(amps * 1000)), int(round(power * 10)), int(self.energy_wh)
        self.readings.append((vt, wh, self.energy_wh))
        return [int(round(volts * 10)), current & 0xFFFF, current >> 16, watts & 0xFFFF,
                watts >> 16, wh & 0xFFFF, wh >> 16, int(round(hz * 10)), int(round(pf * 100)),
                0xFFFF if power > self.alarm_w else 0]

    def _answer(self, req, vt):
        """The reply frame to a complete request, or None for silence."""
        if len(req) < 4 or crc16(req[:-2]) != req[-2] | req[-1] << 8:
            return None
        addr, fc = req[0], req[1]
        if addr not in (GENERAL_ADDR, self.address):
            return None
        if self.fault == "exception":
            return with_crc([addr, fc | 0x80, 4])
        if fc in (0x03, 0x04) and len(req) == 8:
            start, count = req[2] << 8 | req[3], req[4] << 8 | req[5]
            if fc == 0x04:
                table = dict(enumerate(self._registers(vt)))
            else:
                table = {0x0001: self.alarm_w, 0x0002: self.address}
            regs = range(start, start + count)
            if count < 1 or any(r not in table for r in regs):
                return with_crc([addr, fc | 0x80, 2])
            body = [addr, fc, 2 * count]
            for r in regs:
                body += [table[r] >> 8, table[r] & 0xFF]
            return with_crc(body)
        if fc == 0x06 and len(req) == 8:
            reg, value = req[2] << 8 | req[3], req[4] << 8 | req[5]
            if reg == 0x0001:
                self.alarm_w = value
            elif reg == 0x0002 and 1 <= value <= 0xF7:
                self.address = value
            else:
                return with_crc([addr, fc | 0x80, 3])
            return bytes(req)
        if fc == 0x42 and len(req) == 4:
            self.energy_wh = 0.0
            return bytes(req)
        return with_crc([addr, fc | 0x80, 1])

    def _frame_len(self):
        fc = self._rx[1] if len(self._rx) > 1 else None
        return 4 if fc == 0x42 else 8

    def write(self, data, vt):
        self.advance(vt)
        self._rx += data
        if len(self._rx) < 2 or len(self._rx) < self._frame_len():
            return
        req = bytes(self._rx[:self._frame_len()])
        self._rx = bytearray()
        self.requests += 1
        done = vt + len(data) * 10 * _BIT_US  # the request's last byte leaves the UART
        if self.fault == "silent":
            return
        reply = self._answer(req, done)
        if reply is None:
            return
        if self.fault == "stuck_value":
            if self._frozen is None:
                self._frozen = reply
            reply = self._frozen
        else:
            self._frozen = None
        if self.fault == "crc":
            reply = reply[:-1] + bytes([reply[-1] ^ 0x5A])
        self._reply = reply
        self._reply_at = done + _TURNAROUND_US

    def _arrived(self, vt):
        """How many reply bytes have reached the node's UART by vt."""
        if not self._reply or vt < self._reply_at:
            return 0
        return min(len(self._reply), int((vt - self._reply_at) / (10 * _BIT_US)) + 1)

    def pending(self, vt):
        self.advance(vt)
        return self._arrived(vt)

    def read(self, n, timeout_ms, vt):
        self.advance(vt)
        if not self._reply:
            return b"", timeout_ms * 1000
        if n is None or n < 0:
            n = self._arrived(vt)
            wait = 0
        else:
            n = min(n, len(self._reply))
            last_byte_at = self._reply_at + n * 10 * _BIT_US
            wait = max(0, last_byte_at - vt)
            if self._reply_at - vt > timeout_ms * 1000:
                return b"", timeout_ms * 1000
        out, self._reply = self._reply[:n], self._reply[n:]
        self._reply_at += n * 10 * _BIT_US
        return out, int(wait)
