# `machine` on the virtual board: the ESP32 API surface the firmware uses, backed by the
# board host's device models. Raises what the ESP32 port raises: OSError(ENODEV) for an I2C
# address that does not answer, OSError(ETIMEDOUT) for a bus that hangs.
from umachine import mem8, mem16, mem32, idle  # noqa: F401  (the built-in ones)
import sys
import _board

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
PIN_WAKE = 2
EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4
TOUCHPAD_WAKE = 5
ULP_WAKE = 6
_EIO = 5


_hex = _board.hexs
_unhex = _board.unhex

# Classes the firmware may not need are loaded on first use, so the shim (the board's ROM
# on a real chip) takes as little of the firmware's heap as it can.
_LAZY = {"I2C": "_m_i2c", "SoftI2C": "_m_i2c", "SPI": "_m_spi", "SoftSPI": "_m_spi",
         "UART": "_m_uart", "ADC": "_m_adc", "PWM": "_m_pwm", "Signal": "_m_pwm"}


def __getattr__(name):
    if name in _LAZY:
        module = __import__(_LAZY[name])
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(name)


def reset_cause():
    return _board.boot["reset_cause"]


def wake_reason():
    return _board.boot["wake_reason"]


def unique_id():
    return _unhex(_board.boot["unique_id"])


def freq(hz=None):
    return 160000000


def reset():
    _board.request("reset", _final=True, cause=HARD_RESET)
    sys.exit(0)


def soft_reset():
    _board.request("reset", _final=True, cause=SOFT_RESET)
    sys.exit(0)


def deepsleep(ms=0):
    # The process ends here; the host starts it again after `ms` of virtual time, keeping
    # RTC memory and the flash directory, as the chip does.
    _board.request("deepsleep", _final=True, ms=ms, rtc=_hex(RTC._memory))
    sys.exit(0)


def lightsleep(ms=0):
    _board.sleep_us(ms * 1000)


def time_pulse_us(pin, pulse_level, timeout_us=1000000):
    reply = _board.request("pulse", pin=pin.id, level=pulse_level, timeout_us=timeout_us)
    _board.sleep_us(max(0, reply["us"]))  # measuring the pulse takes that long
    return reply["us"]


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        self.id = id
        self._mode = mode
        self._handler = None
        if value is not None:
            self.value(value)

    def init(self, mode=-1, pull=-1, *, value=None):
        self._mode = mode
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return _board.request("pin", pin=self.id)["value"]
        _board.request("pin", pin=self.id, value=1 if v else 0)

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, wake=None):
        # Edges a device model drives are seen when the firmware next asks the host anything
        # or ends a sleep; the handler then runs as a scheduled callback, as on the ESP32.
        self._handler = handler
        if handler is None:
            _board.irqs.pop(self.id, None)
        else:
            _board.irqs[self.id] = (self, handler)
        _board.request("pin_irq", pin=self.id, trigger=trigger if handler else 0)
        return self

    def __repr__(self):
        return "Pin(%d)" % self.id


class RTC:
    _memory = _unhex(_board.boot.get("rtc", "")) if _board.boot else b""
    _MAX = 2048  # the ESP32 port's RTC user memory

    def __init__(self, id=0):
        pass

    def memory(self, data=None):
        if data is None:
            return RTC._memory
        if len(data) > RTC._MAX:
            raise ValueError("buffer too long")
        RTC._memory = bytes(data)
        _board.request("rtc", rtc=_hex(RTC._memory))

    def datetime(self, dt=None):
        import time
        t = time.gmtime()
        return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)


class WDT:
    def __init__(self, id=0, timeout=5000):
        _board.wdt_start(timeout * 1000)

    def feed(self):
        _board.wdt_feed()
