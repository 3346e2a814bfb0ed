"""A virtual ESP32 board: the unchanged firmware runs on the MicroPython unix port, and this
host is its hardware.

The host owns what outlives a process on a real chip: the virtual clock, RTC memory, the
flash directory (the process's working directory), the reset cause and wake reason. It
answers the shim's bus requests (hil_tests/virtual/shim/) from device models written from
datasheets, and it injects faults: a brown-out or reset at any instant, bus NACKs, stuck
peripherals, Wi-Fi down, a watchdog that really resets a hung cycle.

Deep sleep ends the process; `run()` starts it again after the sleep time of virtual time,
with RTC memory and flash kept, as the chip does. Power-on and brown-out clear RTC memory.

The console is a pipe by default (fast; tests read it with `expect()`). With console="pty" it
is a serial port (`board.port`, a pseudo-terminal) that mpremote and pytest-embedded open as
they open an ESP32's, and the board runs freely from `start()` to `close()`: main.py ends at
the REPL, a soft reset (Ctrl-D) restarts it with RTC memory kept, a deep sleep wakes it
after the sleep of virtual time, all behind the same port (see console.py and README.md).
"""
import errno
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from hil_tests.virtual.console import PtyConsole
from tools import mpybuild

SHIM = Path(__file__).resolve().parent / "shim"
_SETSID = shutil.which("setsid") or "/usr/bin/setsid"  # util-linux

PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5
# On an ESP32, machine, network, socket and time are built in and take no heap; here the
# shim that stands in for them is Python. The interpreter gets this much more heap than the
# firmware's cap, so the firmware keeps the heap it would have on the chip. A test checks
# that the shim stays within it. 16K for the base, 9K for the bus classes (_boot.py loads
# them at start: about 8.3K measured on the unix port), and 4K for what each request to the
# host allocates for a moment (its JSON text, the reply's, the receive buffer): a write to
# RTC memory or a bus transfer allocates nothing on the chip.
SHIM_HEAP = 30 * 1024
TIMER_WAKE = 4
# 2026-01-01 as seconds since 2000-01-01, the ESP32 port's epoch: the virtual board's
# wall clock at virtual time 0.
EPOCH = 852076800


class BoardError(Exception):
    pass


class BusFault(Exception):
    """Raised by a device model to make the bus transaction fail with an errno."""

    def __init__(self, code=errno.ENODEV):
        super().__init__(code)
        self.errno = code


class Run:
    """One life of the interpreter, from start to exit: why it ended and what it printed."""

    def __init__(self, number, reset_cause, vt_start):
        self.number = number
        self.reset_cause = reset_cause
        self.vt_start = vt_start
        # "deepsleep", "reset", "watchdog", "brownout", "exit", "killed"; with a pty console
        # "soft-reset" instead of "exit": the process exits on Ctrl-D, sys.exit() at the REPL.
        self.end = None
        self.run_main = True     # False after a soft reset in the raw REPL, as on the chip
        self.sleep_ms = 0
        self.exit_code = None
        self.lines = []

    def __repr__(self):
        return "<Run %d cause=%d end=%s>" % (self.number, self.reset_cause, self.end)


_shim_cache = {}
_shim_lock = threading.Lock()


def compiled_shim():
    """The shim compiled to .mpy once per process: it is the board's ROM, so it should
    cost the firmware as little heap as it can."""
    with _shim_lock:  # boards started together would each compile it
        if "dir" not in _shim_cache:
            import tempfile
            out = Path(tempfile.mkdtemp(prefix="cityedge-shim-"))
            mpy_cross = mpybuild._tool("mpy-cross")
            for src in SHIM.glob("*.py"):
                if src.name == "_boot.py":
                    shutil.copy(src, out / src.name)  # the script the interpreter starts with
                    continue
                subprocess.run([mpy_cross, "-o", str(out / (src.stem + ".mpy")), str(src)],
                               check=True, capture_output=True)
            _shim_cache["dir"] = out
        return _shim_cache["dir"]


class VirtualBoard:
    def __init__(self, flash_dir, *, name="board", heap="96K", models=(), log_dir=None,
                 vt_start_us=0, unique_id=None, ticks_offset_us=0, console="pipe",
                 flash_bytes=None):
        if console not in ("pipe", "pty"):
            raise ValueError("console must be 'pipe' or 'pty', not %r" % (console,))
        self.flash = Path(flash_dir)
        self.flash.mkdir(parents=True, exist_ok=True)
        # The filesystem's size as on the chip (an ESP32 with 4 MB of flash gives MicroPython
        # a 2 MB partition), enforced with a pty console; None: the host's disk.
        self.flash_bytes = flash_bytes
        # With a pty console: real seconds between a deep sleep and the wake (0: at once).
        self.wake_pause_s = 0.0
        self.name = name
        self.heap = heap
        self.vt_listeners = []    # called when the virtual clock moves (the LoRa air)
        self.vt = vt_start_us
        # ticks_* count from each boot, as on the chip; an offset starts them near the wrap.
        self.ticks_offset_us = ticks_offset_us
        self.rtc = b""
        self.reset_cause = PWRON_RESET
        self.wake_reason = 0
        self.wifi_up = True
        self.wifi_rssi = -58
        # An ESP32 station takes about 1..3 s to join an access point after a wake (scan,
        # WPA2 handshake, DHCP); less with a cached channel and a static address.
        self.wifi_connect_ms = 1500
        self.unique_id = unique_id or (abs(hash(name)) & 0xFFFFFFFFFFFF).to_bytes(6, "big")
        self.models = {}
        for model in models:
            self.attach(model)
        self.pins = {}
        self._irqs = {}           # pin -> [trigger, last level] for Pin.irq on a model's pin
        self._stall_us = 0        # real time a model held the board still (see stall())
        self.pwm = {}
        self.runs = []
        self.log_path = Path(log_dir or self.flash.parent) / ("%s.console.log" % name)
        self._lines = threading.Condition()
        self._console = []
        self._proc = None
        self._pty = PtyConsole(self._pty_output) if console == "pty" else None
        self.port = self._pty.path if self._pty else None  # the serial port, with a pty
        self._partial = b""
        self._log = None
        self._supervisor = None   # with a pty: the thread that keeps the board running
        self._closing = False
        self._wdt = None          # (timeout_us, last feed, stalled since): real times
        self._halt_at_vt = None   # a brown-out scheduled at this virtual time
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._server = threading.Thread(target=self._serve, daemon=True)
        self._server.start()

    @property
    def vt(self):
        """The board's virtual clock (µs): the latest time the firmware reported."""
        return self._vt

    @vt.setter
    def vt(self, value):
        self._vt = value
        for listener in self.vt_listeners:
            listener()

    # ------------------------------------------------------------ models and faults

    def attach(self, model):
        """Put a device model on the board: it answers for the bus keys it names."""
        for key in model.bus_keys():
            self.models[key] = model
        model.board = self
        return model

    def model(self, key):
        return self.models[key]

    def brownout_at(self, vt_us):
        """Cut the power when the firmware next touches the hardware at or after vt_us."""
        self._halt_at_vt = (vt_us, "brownout")

    def watchdog_at(self, vt_us):
        """Reset the chip as its watchdog would (RTC memory kept) when the firmware next
        touches the hardware at or after vt_us."""
        self._halt_at_vt = (vt_us, "watchdog")

    @property
    def running(self):
        """True while an interpreter is up (a mains node, or a run not yet ended)."""
        return self._proc is not None and self._proc.poll() is None

    def kill(self):
        """Cut the power now, whatever the firmware is doing (SIGKILL)."""
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)

    # ------------------------------------------------------------ console

    @property
    def console(self):
        with self._lines:
            return list(self._console)

    def expect(self, pattern, timeout=10.0, start=0):
        """Wait until a console line matches the regex; return the match. The failure says
        what the board printed and where the log is."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._lines:
            while True:
                for line in self._console[start:]:
                    found = regex.search(line)
                    if found:
                        return found
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(self._console[-20:])
                    raise BoardError("%s: no console line matched %r within %.0f s; last "
                                     "lines:\n%s\n(full log: %s)"
                                     % (self.name, pattern, timeout, tail, self.log_path))
                self._lines.wait(left)

    def _read_console(self, proc, run, log):
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            log.write(line + "\n")
            log.flush()
            with self._lines:
                self._console.append(line)
                run.lines.append(line)
                self._lines.notify_all()

    def _pty_output(self, data):
        """What the pty console carried, split into lines for `console`, `expect()`, the log."""
        *lines, self._partial = (self._partial + data).split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            self._log.write(line + "\n")
            self._log.flush()
            with self._lines:
                self._console.append(line)
                self._run.lines.append(line)
                self._lines.notify_all()

    # ------------------------------------------------------------ running

    def _env(self):
        return {
            "CITYEDGE_BOARD_HOST": "127.0.0.1:%d" % self._sock.getsockname()[1],
            "MICROPYPATH": "%s:.frozen::lib" % compiled_shim(),
            "PATH": "/usr/bin:/bin",
        }

    def start(self):
        """Power the chip (or wake it) once: returns the Run; `wait()` for its end.
        With a pty console the board then runs freely until `close()` (returns None)."""
        if self._pty:
            if self._supervisor:
                raise BoardError("%s is already running" % self.name)
            self._supervisor = threading.Thread(target=self._free_run, daemon=True)
            self._supervisor.start()
            return None
        if self._proc and self._proc.poll() is None:
            raise BoardError("%s is already running" % self.name)
        return self._start_run()

    def _start_run(self, run_main=True, raw_repl=False):
        run = Run(len(self.runs) + 1, self.reset_cause, self.vt)
        run.run_main = run_main
        self.runs.append(run)
        self._run = run
        self._wdt = None
        self._irqs = {}  # a new interpreter has registered no pin handlers yet
        heap = parse_size(self.heap) + SHIM_HEAP
        launcher = mpybuild.micropython_command()
        args = ["-X", "heapsize=%d" % heap, str(compiled_shim() / "_boot.py")]
        log = open(self.log_path, "a", encoding="utf-8")
        log.write("--- run %d, reset cause %d, virtual time %.3f s\n"
                  % (run.number, run.reset_cause, self.vt / 1e6))
        if self._pty:
            self._start_on_pty(launcher, args, log, raw_repl)
            return run
        self._proc = subprocess.Popen(launcher + args, cwd=self.flash, env=self._env(),
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read_console, args=(self._proc, run, log),
                                        daemon=True)
        self._reader.start()
        return run

    def _start_on_pty(self, launcher, args, log, raw_repl):
        if self._log:
            self._log.close()
        self._log = log
        if self.reset_cause == SOFT_RESET:
            self._pty.emit(b"MPY: soft reboot\r\n")  # what the ESP32 port prints
        # -i: the REPL follows boot.py and main.py, as on the chip. setsid --ctty makes the
        # pty the interpreter's controlling terminal, or Ctrl-C would raise no SIGINT.
        cmd = [_SETSID, "--ctty", *launcher, "-i", *args]
        slave = self._pty.attach(raw_repl)
        try:
            self._proc = subprocess.Popen(cmd, cwd=self.flash, env=self._env(), stdin=slave,
                                          stdout=slave, stderr=slave)
        finally:
            os.close(slave)
        self._reader = self._pty.reader

    def _free_run(self):
        """A board with a pty console: each life ends and the next begins as on the chip."""
        try:
            self._lives()
        except Exception as e:  # the board stops: say why where its output goes
            with self._lines:
                self._console.append("[host] the board stopped: %r" % e)
                self._lines.notify_all()
            raise

    def _lives(self):
        run_main, raw_repl = True, False
        while not self._closing:
            run = self._start_run(run_main, raw_repl)
            self._wait_run(run, None)
            if self._closing:
                return
            run_main, raw_repl = True, False
            soft = run.end == "reset" and self.reset_cause == SOFT_RESET
            if run.end == "exit":
                # The process exits on Ctrl-D or sys.exit() at the REPL: a soft reset on the
                # chip. Or a Ctrl-C hit it between main.py and the REPL: back to the REPL.
                run.end, soft = "soft-reset", True
            if soft:
                raw_repl = self._pty.raw_repl
                run_main = not raw_repl and run.exit_code != -signal.SIGINT
            self._after(run)
            if run.end == "deepsleep" and self.wake_pause_s:
                # A reader that cannot keep up with a board waking hundreds of times a second
                # would lose lines, as a UART drops what nobody reads.
                time.sleep(self.wake_pause_s)

    def wait(self, timeout=60.0):
        """Wait for the running interpreter to end, enforcing the watchdog in real time,
        then decide how the chip comes back (reset cause, RTC memory, clock)."""
        if self._pty:
            raise BoardError("%s has a pty console: it runs freely from start() to close()"
                             % self.name)
        run = self._wait_run(self._run, timeout)
        self._after(run)
        return run

    def _wait_run(self, run, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        # Woken by the process's exit (a pidfd), not by polling: a fleet of boards would
        # otherwise spend a core on waking up hundreds of times a second.
        try:
            pidfd = os.pidfd_open(self._proc.pid)
        except ProcessLookupError:  # already reaped: poll() below says it ended
            pidfd = None
        try:
            while self._proc.poll() is None:
                if self._closing:
                    self._proc.kill()
                now = time.monotonic()
                # Since the last feed, but for a stall going on (the chip is frozen).
                wdt = self._wdt  # (timeout us, last feed, stalled since or None)
                if wdt and ((wdt[2] or now) - wdt[1]) * 1e6 > wdt[0]:
                    self._proc.kill()
                    run.end = "watchdog"
                    break
                if deadline is not None and now > deadline:
                    self._proc.kill()
                    self._proc.wait()
                    raise BoardError("%s: run %d did not end within %.0f s (log: %s)"
                                     % (self.name, run.number, timeout, self.log_path))
                nap = 0.05  # how soon close() is noticed
                if wdt:  # fed meanwhile: then the next turn waits again
                    nap = min(nap, max(0.0, wdt[1] + wdt[0] / 1e6 - now) + 0.001)
                if deadline is not None:
                    nap = min(nap, deadline - now + 0.001)
                select.select([pidfd], [], [], nap)
        finally:
            if pidfd is not None:
                os.close(pidfd)
        self._proc.wait()
        self._reader.join(5)
        run.exit_code = self._proc.returncode
        if run.end is None:
            run.end = "killed" if run.exit_code == -signal.SIGKILL else "exit"
        return run

    def _after(self, run):
        if run.end == "deepsleep":
            self.vt += run.sleep_ms * 1000
            self.reset_cause, self.wake_reason = DEEPSLEEP_RESET, TIMER_WAKE
        elif run.end == "watchdog":
            self.reset_cause, self.wake_reason = WDT_RESET, 0
        elif run.end == "reset":
            self.wake_reason = 0
        elif run.end == "soft-reset":  # RTC memory kept
            self.reset_cause, self.wake_reason = SOFT_RESET, 0
        elif run.end in ("brownout", "killed"):
            # Power lost: RTC memory goes with it; the chip comes back as from power-on.
            self.rtc = b""
            self.reset_cause, self.wake_reason = PWRON_RESET, 0
            self.vt += 1000000  # a second without power
        else:  # main.py returned or raised: the chip sits at the REPL; power-cycle it
            self.rtc = b""
            self.reset_cause, self.wake_reason = PWRON_RESET, 0

    def run(self, runs=1, timeout=60.0, until=None):
        """Start and wait for `runs` lives in a row (or until `until(run)` is true)."""
        done = []
        for _ in range(runs):
            self.start()
            run = self.wait(timeout)
            done.append(run)
            if until and until(run):
                break
        return done

    def close(self):
        self._closing = True
        self.kill()
        if self._supervisor:
            self._supervisor.join(10)
        if self._proc:
            self._proc.wait()
        if self._pty:
            self._pty.close()
            if self._log:
                self._log.close()
        self._sock.close()

    # ------------------------------------------------------------ the bus server

    def _serve(self):
        while True:
            try:
                data, addr = self._sock.recvfrom(65536)
            except OSError:
                return
            req = {}
            try:
                req = json.loads(data)
                reply = self._handle(req)
                if self._pty and self._run.end is not None:
                    # This run is over. Under -i a sys.exit() would land at the REPL, so the
                    # host stops the chip here, as a reset or losing power stops it.
                    self.kill()
                    continue
            except Exception as e:  # a model bug must show up in the board's log, not hang it
                reply = {"errno": errno.EIO, "host_error": repr(e)}
                with self._lines:
                    self._console.append("[host] %s failed: %r" % (data[:80], e))
            if reply is not None:  # None: a stuck peripheral, the transaction never ends
                reply["seq"] = req.get("seq")  # which request this answers
                self._irq_edges(reply, req.get("vt"))
                if self._stall_us:
                    reply["stall_us"], self._stall_us = self._stall_us, 0
                self._sock.sendto(json.dumps(reply).encode(), addr)

    def _handle(self, req):
        op = req["op"]
        if op == "up":  # the shim runs Python code: console input may flow now
            if self._pty:
                self._pty.ready()
            return None
        vt = req["vt"]
        run = self._run
        if op != "boot":
            # Time never runs backwards, however the run ends (a crash, a power cut).
            self.vt = max(self.vt, vt)
        if self._halt_at_vt is not None and vt >= self._halt_at_vt[0] and op != "boot":
            run.end = self._halt_at_vt[1]
            self._halt_at_vt = None
            self.vt = vt
            return {"halt": 0}
        if op == "boot":
            return {"vt": self.vt, "reset_cause": self.reset_cause,
                    "wake_reason": self.wake_reason, "rtc": self.rtc.hex(),
                    "unique_id": self.unique_id.hex(), "epoch": EPOCH,
                    "ticks0": self.ticks_offset_us, "run_main": run.run_main,
                    "pty": self._pty is not None, "flash_bytes": self.flash_bytes,
                    "mac": self.unique_id.hex()}
        if op == "deepsleep":
            self.rtc = bytes.fromhex(req["rtc"])
            run.end, run.sleep_ms = "deepsleep", req["ms"]
            self.vt = vt
            return {}
        if op == "reset":
            run.end = "reset"
            self.reset_cause = req["cause"]
            self.vt = vt
            return {}
        if op == "watchdog":
            run.end = "watchdog"
            self.vt = vt
            return {"halt": 0}
        if op == "wdt":
            self._wdt = (req["timeout_us"], time.monotonic(), None)
            return {}
        if op == "feed":
            if self._wdt:
                self._wdt = (self._wdt[0], time.monotonic(), None)
            return {}
        if op == "rtc":
            self.rtc = bytes.fromhex(req["rtc"])
            return {}
        if op in ("wifi", "wifi_connect", "wifi_disconnect"):
            return {"up": self.wifi_up, "rssi": self.wifi_rssi, "connect_ms": self.wifi_connect_ms}
        if op == "pin":
            return self._pin(req, vt)
        if op == "pwm":
            state = self.pwm.setdefault(req["pin"], {"freq": 0, "duty_u16": 0})
            for k in ("freq", "duty_u16"):
                if k in req:
                    state[k] = req[k]
            model = self.models.get(("pwm", req["pin"]))
            if model and "duty_u16" in req:
                model.pwm(state["freq"], state["duty_u16"], vt)
            return dict(state)
        if op == "i2c_scan":
            return {"addrs": sorted(k[2] for k, m in self.models.items()
                                    if k[0] == "i2c" and k[1] == req["bus"] and m.answers(vt))}
        if op == "pin_irq":
            model = self.models.get(("pin", req["pin"]))
            if req.get("trigger") and model is not None:
                self._irqs[req["pin"]] = [req["trigger"], model.read(vt)]
            else:
                self._irqs.pop(req["pin"], None)
            return {}
        if op == "irq_poll":  # the firmware slept: edges on its irq pins meanwhile
            return {}
        return self._device_op(op, req, vt)

    def stall_begins(self):
        """A model starts holding this board's request (stall() says when it let go)."""
        wdt = self._wdt
        if wdt:  # one tuple, replaced whole: the supervisor reads it from another thread
            self._wdt = (wdt[0], wdt[1], time.monotonic())

    def stall(self, seconds):
        """A model held this board's request for `seconds` of real time (the LoRa air waiting
        for the other boards): the chip saw none of it, so neither its clock nor its
        watchdog advances."""
        self._stall_us += int(seconds * 1e6)
        wdt = self._wdt
        if wdt:
            self._wdt = (wdt[0], wdt[1] + seconds, None)

    def _irq_edges(self, reply, vt):
        """Edges on pins with Pin.irq since the last request, as the pins' models drive them
        (IRQ_RISING 1, IRQ_FALLING 2): the shim runs the handlers."""
        if not self._irqs or vt is None:
            return
        fired = []
        for pin, state in self._irqs.items():
            level = self.models[("pin", pin)].read(vt)
            if level != state[1] and state[0] & (1 if level else 2):
                fired.append(pin)
            state[1] = level
        if fired:
            reply["irq"] = fired

    def _pin(self, req, vt):
        model = self.models.get(("pin", req["pin"]))
        if "value" in req:
            self.pins[req["pin"]] = req["value"]
            if model:
                model.write(req["value"], vt)
            return {}
        if model:
            return {"value": model.read(vt)}
        return {"value": self.pins.get(req["pin"], 0)}

    def _device_op(self, op, req, vt):
        key = {"i2c": ("i2c", req.get("bus"), req.get("addr")), "adc": ("adc", req.get("pin")),
               "pulse": ("pulse", req.get("pin")), "spi": ("spi", req.get("bus")),
               "uart_write": ("uart", req.get("uart")), "uart_read": ("uart", req.get("uart")),
               "uart_any": ("uart", req.get("uart"))}.get(op)
        if key is None:
            return {"errno": errno.EINVAL, "host_error": "unknown op %r" % op}
        model = self.models.get(key)
        if model is not None and model.fault == "stuck":
            return None
        try:
            if op == "i2c":
                if model is None:
                    raise BusFault(errno.ENODEV)
                data, us = model.transfer(bytes.fromhex(req["write"]), req["read"], vt)
                return {"data": data.hex(), "us": us}
            if model is None:
                raise BusFault(errno.ENODEV)
            if op == "adc":
                uv = model.read_uv(vt, req.get("atten", 3))
                return {"uv": uv, "u16": min(65535, uv * 65535 // 3300000)}
            if op == "pulse":
                return {"us": model.pulse_us(req["level"], req["timeout_us"], vt)}
            if op == "spi":
                return {"data": model.transfer(bytes.fromhex(req["write"]), vt).hex()}
            if op == "uart_write":
                model.write(bytes.fromhex(req["data"]), vt)
                return {}
            if op == "uart_any":
                return {"n": model.pending(vt)}
            data, us = model.read(req["n"], req["timeout_ms"], vt)
            return {"data": data.hex(), "us": us}
        except BusFault as e:
            return {"errno": e.errno}


def parse_size(text):
    """Bytes in "96K", "1M" or "65536"."""
    text = str(text).strip().upper()
    scale = {"K": 1024, "M": 1024 * 1024}.get(text[-1:], 1)
    return int(text.rstrip("KM")) * scale


def deploy(flash_dir, packages=("protocol", "firmware"), *, config=None, key=None,
           firmware_dir=None):
    """Put firmware on a virtual board's flash as tools/flash does on a real one: boot.py and
    main.py as source, every package compiled to .mpy under lib/, the config and the key.
    `firmware_dir` deploys another firmware folder (laid out as firmware/) instead."""
    flash = Path(flash_dir)
    flash.mkdir(parents=True, exist_ok=True)
    lib = flash / "lib"
    if packages and lib.exists():
        shutil.rmtree(lib)
    for package in packages:
        if package == "firmware":
            src = Path(firmware_dir) if firmware_dir else mpybuild.ROOT / "firmware"
            for name in ("boot.py", "main.py"):
                shutil.copy(src / name, flash / name)
            for sub in sorted(p for p in src.iterdir() if p.is_dir() and p.name != "__pycache__"):
                mpybuild.compile_tree(sub, lib / sub.name)
        else:
            mpybuild.compile_tree(mpybuild.ROOT / package, lib / package)
    if config is not None:
        (flash / "config.json").write_text(json.dumps(config, indent=1))
    if key is not None:
        (flash / "device.key").write_text(key.hex())
    return flash
