# The link from the MicroPython process to its board host (hil_tests/virtual/board.py), and
# the board's virtual clock. Every bus transaction is one UDP request/answer on loopback,
# stamped with the virtual time so the host's device models see time pass as a chip would.
#
# Virtual time runs at real speed while code runs and jumps over sleeps, so a simulated day
# takes seconds. Ticks wrap at 2**30 as on an ESP32, not 2**62 as on the unix port.
import json
import os
import sys
import ubinascii
import usocket
import utime

TICKS_PERIOD = 1 << 30
_host = None
_sock = None
_real0 = 0
_vt0 = 0
_slept = 0
_seq = 0
_wdt = [None, 0]  # timeout (us), virtual time of the last feed
irqs = {}  # pin id -> (Pin, handler) registered with Pin.irq
boot = {}


def _connect():
    global _host, _sock
    addr = os.getenv("CITYEDGE_BOARD_HOST")
    if not addr:
        print("virtual board: CITYEDGE_BOARD_HOST is not set")
        sys.exit(1)
    host, port = addr.split(":")
    _host = usocket.getaddrinfo(host, int(port))[0][-1]
    _sock = usocket.socket(usocket.AF_INET, usocket.SOCK_DGRAM)


def now_us():
    """Virtual microseconds since the board was first powered."""
    return _vt0 + utime.ticks_diff(utime.ticks_us(), _real0) + _slept


def request(op, _reply_size=512, _final=False, **args):
    """One transaction with the host. A final one (a deep sleep, a reset) ends the run: with a
    pty console the host stops the process instead of answering it."""
    global _seq, _slept
    _seq += 1
    args["op"] = op
    args["vt"] = now_us()
    args["seq"] = _seq
    data = json.dumps(args).encode()
    sent = False
    while True:
        try:
            if not sent:
                _sock.sendto(data, _host)
                sent = True
            reply = json.loads(_sock.recv(_reply_size))
        except KeyboardInterrupt:
            if _final:  # a chip going to sleep or resetting: a Ctrl-C cannot stop it now
                continue
            raise
        if reply.get("seq") == _seq:  # drop the answer to a request a Ctrl-C cut short
            break
    if "halt" in reply:
        # The host ended this run (reset, brown-out, watchdog): stop like a chip losing power.
        sys.exit(reply["halt"])
    if "stall_us" in reply:
        # The host held this request while other boards caught up: no time for the chip.
        _slept -= reply["stall_us"]
    if "irq" in reply:
        _dispatch(reply["irq"])
    return reply


def _dispatch(pins):
    # As on the ESP32 port, a pin's handler runs as a scheduled callback, between two
    # bytecodes of whatever the firmware does when the edge is seen.
    import micropython
    for pin in pins:
        entry = irqs.get(pin)
        if entry is not None:
            micropython.schedule(entry[1], entry[0])


def start():
    global _real0, _vt0
    _connect()
    _real0 = utime.ticks_us()
    answer = request("boot", _reply_size=8192)  # RTC memory travels as hex: up to 4 KB
    _vt0 = answer["vt"]
    boot.update(answer)


def ready():
    """Tell the host that Python code runs: it holds console input until then, since a
    Ctrl-C that reaches the interpreter earlier kills it. No answer is awaited."""
    _sock.sendto(b'{"op": "up", "vt": 0}', _host)


def sleep_us(us):
    global _slept
    if us <= 0:
        return
    timeout, fed = _wdt
    if timeout is not None and now_us() + us - fed > timeout:
        # The watchdog fires during this sleep: the chip resets at that instant.
        _slept += fed + timeout - now_us()
        request("watchdog", _final=True)
    _slept += us
    if irqs:
        # An edge during the sleep runs its handler at once on the chip: ask the host.
        request("irq_poll")


def wdt_start(timeout_us):
    _wdt[0] = timeout_us
    _wdt[1] = now_us()
    request("wdt", timeout_us=timeout_us)


def wdt_feed():
    _wdt[1] = now_us()
    request("feed")


def hexs(data):
    return ubinascii.hexlify(data).decode()


def unhex(text):
    return ubinascii.unhexlify(text)


def check(reply):
    """A bus reply, or the OSError the ESP32 port would raise for it."""
    if "errno" in reply:
        raise OSError(reply["errno"])
    return reply
