"""The board under test as the tests talk to it: `write` and `expect` on its console, plus
the node's own console lines parsed (firmware/README.md, "The cycle").

It wraps pytest-embedded's Dut (the serial service reads the port into a pexpect buffer and
a log file) so that a failure says, in a technician's words, what was awaited, what the
board printed last, and where the whole log is."""
import ast
import re
import time

import pexpect

BOOT = r"node: cityedge firmware (\d+), reset cause (\d+), wake reason (\d+)"
READING = r"node: reading (\{[^\r\n]*\}|None) events (\[[^\r\n]*\])"
CYCLE_DONE = (r"node: cycle done: awake (\d+) ms \(sensor \d+, tx \d+, rx \d+\), "
              r"(\d+) frame\(s\) queued, sleeping (\d+) ms")
COMMAND = r"node: command (\d+) (\w+) ([^\r\n]*) -> (\d+)"

PWRON_RESET, WDT_RESET, DEEPSLEEP_RESET = 1, 3, 4
TAIL_LINES = 25


class BenchFailure(AssertionError):
    pass


class Match:
    """A console match with its groups as text."""

    def __init__(self, m):
        self._m = m

    def group(self, i=0):
        g = self._m.group(i)
        return None if g is None else g.decode("utf-8", "replace")

    def groups(self):
        return tuple(self.group(i + 1) for i in range(len(self._m.groups())))


class BenchDut:
    def __init__(self, dut, target):
        self._dut = dut
        self.target = target

    @property
    def serial(self):
        """The pyserial port (for RTS/DTR)."""
        return self._dut.serial.proc

    @property
    def logfile(self):
        return self._dut.logfile

    def write(self, text):
        """Send text as typed (no newline added)."""
        self._dut.serial.proc.write(text.encode())

    def writeline(self, text):
        self.write(text + "\r")

    def tail(self, n=TAIL_LINES):
        try:
            with open(self._dut.logfile, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return "(no log)"
        # pytest-embedded prefixes each logged line with a timestamp; keep it: it dates them.
        return "\n".join(lines[-n:])

    def fail(self, what):
        raise BenchFailure("%s (%s, %s)\n--- the board's last lines:\n%s\n--- full console log: %s%s"
                           % (what, self.target.name, self.target.kind, self.tail(),
                              self._dut.logfile,
                              "\n--- board log: %s" % self.target.log_path
                              if self.target.log_path else "")) from None

    def expect(self, pattern, timeout=15.0, why=None):
        """Wait for console output matching the regex; return the Match. On a timeout the
        test fails with `why` (what a technician should check), the board's last lines and
        the log's path."""
        try:
            m = self._dut.expect(re.compile(pattern.encode()), timeout=timeout)
        except (pexpect.TIMEOUT, pexpect.EOF):
            self.fail("no console output matched %r within %.0f s%s"
                      % (pattern, timeout, ": " + why if why else ""))
        return Match(m)

    # ------------------------------------------------------------ the node's lines

    def expect_boot(self, cause=None, timeout=20.0, why=None):
        """The next start of the node; returns (version, reset cause, wake reason)."""
        pattern = BOOT if cause is None else BOOT.replace(r"reset cause (\d+)",
                                                          r"reset cause (%d)" % cause)
        return tuple(int(g) for g in self.expect(pattern, timeout, why).groups())

    def expect_reading(self, timeout=20.0, why=None):
        """The next reading the node took: (reading dict or None, events list)."""
        m = self.expect(READING, timeout, why or "the node printed no reading: is it "
                        "running the cityedge firmware, and is its config valid?")
        try:
            return ast.literal_eval(m.group(1)), ast.literal_eval(m.group(2))
        except (ValueError, SyntaxError):
            self.fail("the board printed a reading that does not parse: %s" % m.group(0))

    def expect_cycle_done(self, timeout=30.0, why=None):
        """The end of a cycle: (awake ms, frames still queued, sleep ms)."""
        m = self.expect(CYCLE_DONE, timeout, why or "the node did not finish a cycle")
        return tuple(int(g) for g in m.groups())

    # ------------------------------------------------------------ the REPL

    def at_repl(self, timeout=15.0):
        """Interrupt main.py until the REPL prompt shows (a node is only awake for moments:
        keep sending Ctrl-C)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.write("\x03")
            try:
                self._dut.expect(re.compile(rb">>> "), timeout=0.3)
                return
            except pexpect.TIMEOUT:
                continue
        self.fail("the board's REPL did not answer Ctrl-C within %.0f s: is the console at "
                  "115200 baud and the board powered?" % timeout)

    def repl_value(self, expression, timeout=5.0):
        """Evaluate a Python expression at the REPL; returns its repr() as printed. The
        marker is split in the typed line so that the echo cannot match."""
        self.writeline("print('@@' + 'V', repr(%s))" % expression)
        return self.expect(r"@@V ([^\r\n]*)\r?\n", timeout,
                           "the REPL did not evaluate %s" % expression).group(1)

    def leave_repl(self):
        """A soft reset at the REPL: main.py runs again, the node cycles on."""
        self.write("\x04")
