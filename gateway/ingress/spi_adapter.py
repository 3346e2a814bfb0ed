# The MicroPython surface the firmware's SX127x driver (firmware/net/sx127x.py) uses, made
# from what a Raspberry Pi has: `spidev` for the SPI bus, `gpiod` (libgpiod v2 bindings) for
# the reset and DIO0 lines, and the ticks/sleep functions of MicroPython's `time`. With it
# the gateway runs the very driver the nodes run, unchanged.
import importlib.util
import os
import sys
import time
import types

_FIRMWARE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "firmware")


class MissingDependency(OSError):
    """The Pi's SPI or GPIO bindings (or the driver's source) are not there: an
    environment problem, reported as the gateway reports a device it cannot open."""


def _need(module, package):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(
            "ingress.spi needs the Python module %r, which is not installed: .venv/bin/pip "
            "install %s" % (module, package)) from None


class SpiBus:
    """machine.SPI's write_readinto over a spidev.SpiDev. The kernel asserts the chip
    select for each transfer, so one call is one SPI transaction, as the driver means it."""

    def __init__(self, dev):
        self._dev = dev

    def write_readinto(self, write_buf, read_buf):
        n = len(write_buf)
        if len(read_buf) != n:
            raise ValueError("spi: write_readinto with buffers of %d and %d bytes"
                             % (n, len(read_buf)))
        got = self._dev.xfer2(list(bytes(write_buf)))
        if len(got) != n:
            raise OSError("spi: %d bytes back from a %d-byte transfer" % (len(got), n))
        read_buf[:] = bytes(got)


class KernelChipSelect:
    """The driver's chip-select Pin. spidev's own chip select (CE0/CE1) frames every
    transfer, so the driver's cs(0)/cs(1) around it have nothing left to do."""

    OUT = 1

    def init(self, mode, value=None):
        pass

    def __call__(self, value=None):
        return 1 if value is None else None

    value = __call__


class GpiodPin:
    """machine.Pin for one GPIO line through libgpiod v2: output (reset) or input with a
    rising-edge interrupt (DIO0, DIO1), whose events the ingress reads from `fd` and hands to
    `dispatch()` (the driver's handler only notes the time and sets a flag). An input read
    for its level only (an SX126x's BUSY) also keeps edge events, which nobody reads."""

    IN = 0
    OUT = 1
    IRQ_RISING = 1

    def __init__(self, chip, line, consumer="cityedge-gateway"):
        self._gpiod = _need("gpiod", "'gpiod>=2'")
        self.chip = chip
        self.line = line
        self.consumer = consumer
        self._request = None
        self._handler = None
        self._out = False

    def _settings(self, **kw):
        return self._gpiod.LineSettings(**kw)

    def init(self, mode, value=None):
        g = self._gpiod
        self.close()
        if mode == self.OUT:
            settings = self._settings(
                direction=g.line.Direction.OUTPUT,
                output_value=g.line.Value.ACTIVE if value else g.line.Value.INACTIVE)
        else:
            settings = self._settings(direction=g.line.Direction.INPUT,
                                      edge_detection=g.line.Edge.RISING)
        self._out = mode == self.OUT
        self._request = g.request_lines(self.chip, consumer=self.consumer,
                                        config={self.line: settings})

    def __call__(self, value=None):
        return self.value(value)

    def value(self, value=None):
        g = self._gpiod
        if value is None:
            return 1 if self._request.get_value(self.line) == g.line.Value.ACTIVE else 0
        self._request.set_value(self.line, g.line.Value.ACTIVE if value else g.line.Value.INACTIVE)
        return None

    def irq(self, handler=None, trigger=IRQ_RISING):
        self._handler = handler

    @property
    def fd(self):
        return self._request.fd

    def dispatch(self):
        """Read the pending edge events and call the handler once for them."""
        if self._request.read_edge_events() and self._handler:
            self._handler(self)

    def close(self):
        if self._request is not None:
            self._request.release()
            self._request = None


class MicroTime(types.SimpleNamespace):
    """MicroPython's time functions on CPython's monotonic clock. ticks do not wrap here:
    ticks_diff is a plain difference."""

    def __init__(self):
        super().__init__(
            ticks_us=lambda: time.monotonic_ns() // 1000,
            ticks_ms=lambda: time.monotonic_ns() // 1000000,
            ticks_diff=lambda a, b: a - b,
            ticks_add=lambda a, b: a + b,
            sleep_us=lambda us: time.sleep(us / 1e6),
            sleep_ms=lambda ms: time.sleep(ms / 1e3),
            sleep=time.sleep, time=time.time)


def load_driver(path=None, chip="sx127x"):
    """The firmware's driver module for the chip (net/sx127x.py or net/sx126x.py), loaded
    from the source tree on CPython with the net.radio module it imports: `const` is the
    identity (as MicroPython's is to a reader), and their `time` is MicroTime. Neither stays
    in sys.modules under the firmware's names."""
    path = path or os.path.join(_FIRMWARE, "net", "%s.py" % chip)
    radio_path = os.path.join(os.path.dirname(path), "radio.py")
    for needed in (path, radio_path):
        if not os.path.exists(needed):
            raise MissingDependency("ingress.spi uses the firmware's driver %s, which is not "
                                    "there: run the gateway from a cityedge checkout" % needed)
    if "micropython" not in sys.modules:
        shim = types.ModuleType("micropython")
        shim.const = lambda value: value
        sys.modules["micropython"] = shim
    radio = _load(radio_path, "cityedge_firmware_radio")
    package = types.ModuleType("net")
    package.radio = radio
    saved = {name: sys.modules.get(name) for name in ("net", "net.radio")}
    sys.modules.update({"net": package, "net.radio": radio})
    try:
        return _load(path, "cityedge_firmware_" + os.path.basename(path)[:-3])
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.time = MicroTime()
    return module


def open_spi(bus, device, speed_hz):
    spidev = _need("spidev", "spidev")
    dev = spidev.SpiDev()
    try:
        dev.open(bus, device)
    except OSError as e:
        raise OSError("cannot open /dev/spidev%d.%d (%s): enable SPI (raspi-config) and add "
                      "the service user to the spi group" % (bus, device, e.strerror)) from None
    dev.max_speed_hz = speed_hz
    dev.mode = 0  # SX127x: CPOL 0, CPHA 0 (datasheet 4.3)
    return dev
