"""A virtual board's console as a serial port.

The interpreter runs on a pseudo-terminal of its own: raw, but with ISIG kept, so a Ctrl-C
raises KeyboardInterrupt in main.py as the ESP32's UART driver does. `PtyConsole` bridges it to
a second pseudo-terminal whose slave, `path`, is the board's port. The port outlives the
interpreter: a deep sleep, a reset or a soft reset starts a new interpreter behind the same
port, so mpremote or a serial test harness stays attached as to a USB-serial adapter.

Two things the bridge must do that a chip does not need:
- Hold input until the interpreter runs Python code (the shim says so with "up"). A Ctrl-C
  that reaches the process earlier kills it instead of interrupting main.py.
- After a soft reset in the raw REPL, take the new interpreter's REPL back into raw mode
  (Ctrl-A once its banner is out), showing only "raw REPL; CTRL-B to exit" as the chip does.
"""
import os
import pty
import select
import termios
import threading
import tty

RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
# What the REPL prints when it enters each mode: which one was printed last is the mode.
_RAW_MARK = b"raw REPL; CTRL-B to exit"
_FRIENDLY_MARK = b'Type "help()" for more information.'
_CTRL_A, _CTRL_C = b"\x01", b"\x03"


def _interpreter_tty():
    """A pseudo-terminal for one interpreter, raw with ISIG kept. Ctrl-\\ and Ctrl-Z are
    switched off: they would kill or stop the process, which no chip does."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] |= termios.ISIG
    attrs[6][termios.VQUIT] = attrs[6][termios.VSUSP] = b"\x00"  # _POSIX_VDISABLE
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.set_blocking(master, False)
    return master, slave


class PtyConsole:
    def __init__(self, output):
        """output(bytes) is called with everything the board prints, as the port carries it."""
        self._output = output
        self._port, self._port_slave = pty.openpty()
        # The host keeps the slave open: the port stays put while clients come and go.
        tty.setraw(self._port_slave)
        os.set_blocking(self._port, False)
        self.path = os.ttyname(self._port_slave)
        self.raw_repl = False      # the REPL last said it was in raw mode
        self.reader = None         # the thread reading the current interpreter's output
        self._lock = threading.Lock()
        self._out_lock = threading.Lock()
        self._tty = None           # master side of the current interpreter's terminal
        self._held = bytearray()   # port input not yet given to the interpreter
        self._open = False         # input flows to the interpreter
        self._at_repl = False      # this interpreter has reached its REPL
        self._since_ctrl_c = bytearray()  # input from a Ctrl-C main.py may not have acted on
        self._reentering = None    # output held while the raw REPL is re-entered
        self._ctrl_a_sent = False
        self._tail = b""
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        self._pump = threading.Thread(target=self._pump_input, daemon=True)
        self._pump.start()

    # ------------------------------------------------------------ the interpreter side

    def attach(self, raw_repl=False):
        """A terminal for the next interpreter: returns the slave fd to give it as stdin,
        stdout and stderr (close your copy once it is started). With raw_repl, its REPL is
        taken back to raw mode when it starts, as after a soft reset in the raw REPL."""
        master, slave = _interpreter_tty()
        with self._lock:
            self._tty = master
            self._open = False
            self._at_repl = False
            self._tail = b""
            self.raw_repl = raw_repl
            self._reentering = bytearray() if raw_repl else None
            self._ctrl_a_sent = False
        self.reader = threading.Thread(target=self._read_output, args=(master,), daemon=True)
        self.reader.start()
        return slave

    def ready(self):
        """The interpreter runs Python code: a Ctrl-C now interrupts it, so input may flow."""
        with self._lock:
            if self._reentering is None:
                self._open = True
        self._wake()

    def emit(self, data):
        """Print on the port as the board (the soft-reboot banner)."""
        with self._out_lock:
            self._output(data)
            self._send(data)

    def _read_output(self, master):
        while True:
            select.select([master], [], [])
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                continue
            except OSError:  # EIO: the interpreter has exited and its terminal is gone
                break
            if not data:
                break
            with self._lock:
                self._track(data)
                if self._reentering is not None:
                    data = self._reenter(master, data)
            if data:
                self.emit(data)
        with self._lock:
            if self._reentering:  # it stopped before its REPL: show what it printed
                self.emit(bytes(self._reentering))
            self._reentering = None
            if self._tty == master:
                self._tty = None
            self._open = False
            # Input sent after a Ctrl-C that the interpreter ended (a deep sleep, a reset)
            # before acting on: the next start gets it, as if it were typed then.
            self._held[:0] = self._since_ctrl_c
            self._since_ctrl_c.clear()
        os.close(master)

    def _track(self, data):
        tail = self._tail + data
        raw, friendly = tail.rfind(_RAW_MARK), tail.rfind(_FRIENDLY_MARK)
        if raw >= 0 or friendly >= 0:
            self.raw_repl = raw > friendly
            self._at_repl = True
            self._since_ctrl_c.clear()
        self._tail = tail[-64:]

    def _reenter(self, master, data):
        """Output while the raw REPL is re-entered: what boot.py printed passes, the friendly
        banner does not; once its prompt is out, Ctrl-A; from the raw prompt on, all passes."""
        buf = self._reentering
        buf += data
        if not self._ctrl_a_sent:
            if not buf.endswith(b">>> "):
                return b""
            boot_output = bytes(buf[:max(0, buf.rfind(b"MicroPython "))])
            buf.clear()
            os.write(master, _CTRL_A)
            self._ctrl_a_sent = True
            return boot_output
        found = buf.find(RAW_PROMPT)
        if found < 0:
            return b""
        rest = bytes(buf[found:])
        self._reentering = None
        self._open = True
        self._wake()
        return rest

    # ------------------------------------------------------------ the port side

    def _send(self, data):
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._port, view)
            except BlockingIOError:
                # Nobody has read the port for a long while: a UART sends regardless, so
                # drop what waits unread and keep the newest output.
                termios.tcflush(self._port_slave, termios.TCIFLUSH)
                try:
                    n = os.write(self._port, view)
                except BlockingIOError:
                    return
            view = view[n:]

    def _pump_input(self):
        """Port input to the interpreter, held while it cannot take it."""
        while True:
            with self._lock:
                target = self._tty if self._open and self._held else None
            try:
                readable, writable, _ = select.select(
                    [self._port, self._wake_r], [target] if target is not None else [], [])
            except OSError:  # the interpreter's terminal closed under us: look again
                continue
            if self._wake_r in readable:
                os.read(self._wake_r, 512)
                if self._closed:
                    return
            if self._port in readable:
                try:
                    data = os.read(self._port, 4096)
                except (BlockingIOError, OSError):
                    data = b""
                with self._lock:
                    self._held += data
            if writable:
                self._deliver()

    def _deliver(self):
        with self._lock:
            if not (self._open and self._held and self._tty is not None):
                return
            try:
                n = os.write(self._tty, self._held)
            except OSError:  # full for now, or the interpreter is gone
                return
            sent = bytes(self._held[:n])
            del self._held[:n]
            if self._at_repl:  # the REPL reads Ctrl-C as a key, it cannot be missed
                return
            at = sent.rfind(_CTRL_C)
            if at >= 0:
                self._since_ctrl_c[:] = sent[at:]
            elif self._since_ctrl_c:
                self._since_ctrl_c += sent

    def _wake(self):
        os.write(self._wake_w, b".")

    def close(self):
        self._closed = True
        self._wake()
        self._pump.join(5)
        for fd in (self._port, self._port_slave, self._wake_r, self._wake_w):
            os.close(fd)
