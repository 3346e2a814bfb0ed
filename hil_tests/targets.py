"""The boards a bench run drives: a real board on a serial port, or a virtual board whose
console is a pseudo-terminal. Both are opened by pytest-embedded's serial service the same
way; a target adds what differs: how the board is reset, what is known about it before it
is asked, and how a stimulus reaches it (a device model on the virtual board, a technician's
hands on the bench)."""
import contextlib
import json
import os
import re
import secrets
import select
import shutil
import sys
import time
from pathlib import Path

from hil_tests.virtual import kits
from hil_tests.virtual.board import PWRON_RESET, VirtualBoard, deploy

# The chip whose reading each kind is about, and the model fault that silences it.
_MAIN_SENSOR = {"fill": ("JSNSR04T", "dead"), "parking": ("QMC5883L", "nack"),
                "co2": ("SCD4x", "nack"), "luminaire": ("PZEM004T", "silent")}


# A watchdog timeout for the watchdog test, per kind: longer than the longest wait a
# healthy wake cycle makes for its sensor (the SCD41's 5 s single shot; the QMC5883L's
# settling), short because a hung cycle is reset after that much real time.
_TEST_WDT_MS = {"fill": 3000, "parking": 5000, "co2": 7000, "luminaire": 3000}


# With a pty console the board's flash is a filesystem written in Python (virtual/shim/
# _flashfs.py, so that mpremote can use it), and every file the firmware opens costs heap
# that littlefs, in C on the chip, does not: the firmware's 96K plus 8K for it. Measured: a
# luminaire node ran 24 cycles at 96K before a MemoryError, and 59 without one at 104K.
_PTY_HEAP = "104K"


def firmware_version(firmware_dir):
    """FW_VERSION as the firmware folder declares it (node/runtime.py)."""
    text = (Path(firmware_dir) / "node" / "runtime.py").read_text()
    found = re.search(r"^FW_VERSION\s*=\s*(\d+)", text, re.M)
    if not found:
        raise ValueError("%s/node/runtime.py declares no FW_VERSION" % firmware_dir)
    return int(found.group(1))


class NeedsTechnician(Exception):
    """A stimulus only a person at the bench can give, and nobody was asked to."""


class Target:
    """What the tests need from a board beyond its console."""

    virtual = False
    name = "board"
    kind = None
    port = None
    log_path = None   # where everything the board printed is kept, if the target keeps it

    def reset(self, serial):
        raise NotImplementedError

    def stimulus(self, name, instruction, apply=None):
        """Give the board a stimulus: `apply()` on the virtual board; on a bench, the
        technician is told `instruction` (or the test is skipped if nobody is there)."""
        raise NotImplementedError

    def close(self):
        pass


class SerialTarget(Target):
    """A real ESP32 on a USB serial port, provisioned with tools/flash. The usual USB-UART
    auto-reset wiring: RTS drives EN (reset), DTR drives GPIO0 (boot mode)."""

    def __init__(self, port, kind, *, name=None, technician=False, prompt_timeout=120.0,
                 interval_s=None):
        self.port = port
        self.kind = kind
        self.name = name or os.path.basename(port)
        self.technician = technician
        self.prompt_timeout = prompt_timeout
        self.interval_s = interval_s or kits.kit(kind).INTERVAL
        self.wdt_ms = None

    def reset(self, serial):
        # EN low for 100 ms with GPIO0 high: a normal boot, as esptool's hard reset does.
        try:
            serial.dtr = False
            serial.rts = True
            time.sleep(0.1)
            serial.rts = False
        except OSError as e:  # a port without modem lines (a bare UART cable, a pty)
            if not self.technician:
                raise AssertionError(
                    "%s: cannot reset the board through %s (%s): use a USB-UART with the "
                    "auto-reset wiring, or run with --technician to press EN by hand"
                    % (self.name, self.port, e)) from None
            ask(self.name, "press the board's EN (reset) button", self.prompt_timeout)

    def time_wake(self, dut, sleep_ms, awake_ms):
        """Seconds from the node's "sleeping" line to its timer wake, by the host's clock."""
        start = time.monotonic()
        dut.expect_boot(4, timeout=sleep_ms / 1000 + 60,
                        why="the node did not wake from deep sleep on its timer")
        return time.monotonic() - start

    def stimulus(self, name, instruction, apply=None):
        if not self.technician:
            raise NeedsTechnician("on a bench board this needs a technician: %s (run with "
                                  "--technician to be asked at the bench)" % instruction)
        ask(self.name, instruction, self.prompt_timeout)


def ask(board, instruction, timeout):
    """Tell the technician what to do; they press Enter when done (or the test goes on by
    itself after `timeout` s, and the board's console decides)."""
    tty = open("/dev/tty", "r+") if os.path.exists("/dev/tty") else None
    out = tty or sys.stderr
    out.write("\n>>> %s: %s\n    press Enter when done (%.0f s) " % (board, instruction, timeout))
    out.flush()
    if tty is None:
        time.sleep(min(timeout, 10))
        return
    try:
        ready, _, _ = select.select([tty], [], [], timeout)
        if ready:
            tty.readline()
    finally:
        tty.close()


class VirtualTarget(Target):
    """A virtual board with the kit of its kind, the firmware deployed on its flash, a
    pty console, running freely: a deep sleep passes at once in real time."""

    virtual = True

    def __init__(self, kind, work, image, *, addr, key, gateway_port, device_id,
                 status_every=2):
        self.kind = kind
        self.name = device_id
        self.device_id = device_id
        self.interval_s = kits.kit(kind).INTERVAL
        flash = self.flash = Path(work) / device_id / "flash"
        if flash.exists():
            shutil.rmtree(flash)
        shutil.copytree(image, flash)
        # A status frame every other cycle: a frame each cycle or two, whatever the kind.
        self.config = kits.node_config(kind, addr=addr, gateway_port=gateway_port,
                                       device_id=device_id, status_every=status_every)
        deploy(flash, packages=(), config=self.config, key=key)
        self.models = kits.kit(kind).models()
        self.board = VirtualBoard(flash, name=device_id, log_dir=Path(work) / device_id,
                                  models=self.models, console="pty", heap=_PTY_HEAP,
                                  unique_id=secrets.token_bytes(6))
        # Paced to a few hundred wakes a minute, so that the suite's reader sees every line
        # even on a busy machine.
        self.board.wake_pause_s = 0.05
        self.port = self.board.port
        self.log_path = self.board.log_path
        self.board.start()

    @contextlib.contextmanager
    def short_watchdog(self):
        """The watchdog timeout set short in config.json (read at every wake) while the
        block runs, then set back."""
        path = self.flash / "config.json"
        provisioned = path.read_text()
        self.wdt_ms = _TEST_WDT_MS[self.kind]
        path.write_text(json.dumps(dict(json.loads(provisioned), wdt_ms=self.wdt_ms)))
        try:
            if kits.kit(self.kind).POWER == "mains":
                self.reset(None)  # it never sleeps: start it again to read the change
            else:  # a wake that began after the change has read it
                started = len(self.board.runs)
                deadline = time.monotonic() + 30
                while len(self.board.runs) < started + 2 and time.monotonic() < deadline:
                    time.sleep(0.01)
            yield self.wdt_ms
        finally:
            path.write_text(provisioned)

    def sensor(self):
        """The model of the chip this kind's reading is about."""
        cls, _ = _MAIN_SENSOR[self.kind]
        return next(m for m in self.models if type(m).__name__ == cls)

    def model(self, cls_name):
        return next(m for m in self.models if type(m).__name__ == cls_name)

    @property
    def silencing_fault(self):
        return _MAIN_SENSOR[self.kind][1]

    def reset(self, serial):
        # Cut the power: the host starts the chip again from power-on, flash kept. A cut
        # that falls between two runs (a wake from deep sleep is a new process) finds no
        # process: cut again until the board comes back from power-on.
        for _ in range(20):
            runs = len(self.board.runs)
            self.board.kill()
            deadline = time.monotonic() + 5
            while len(self.board.runs) == runs and time.monotonic() < deadline:
                time.sleep(0.005)
            if self.board.runs[-1].reset_cause == PWRON_RESET:
                return
        raise AssertionError("%s: the virtual board does not come back from power-on"
                             % self.name)

    def stimulus(self, name, instruction, apply=None):
        if apply is None:
            raise ValueError("no virtual stimulus %r for %s" % (name, self.kind))
        apply()

    def time_wake(self, dut, sleep_ms, awake_ms):
        """Virtual seconds the node slept after asking for sleep_ms, by the board's clock:
        from the start of that run to the next, less the time it was awake."""
        dut.expect_boot(4, why="the node did not wake from deep sleep on its timer")
        runs = list(self.board.runs)
        for before, after in reversed(list(zip(runs, runs[1:]))):
            if before.end == "deepsleep" and before.sleep_ms == sleep_ms:
                return (after.vt_start - before.vt_start) / 1e6 - awake_ms / 1000
        raise AssertionError("%s: no deep sleep of %d ms in the board's runs"
                             % (self.name, sleep_ms))

    def close(self):
        self.board.close()
