# `time` as the firmware sees it on the virtual board: the board's virtual clock with the
# ESP32's tick period. Everything else comes from the built-in module.
from utime import *  # noqa: F401,F403
import _board

_MASK = _board.TICKS_PERIOD - 1
_HALF = _board.TICKS_PERIOD // 2
# The ESP32 port counts time() from 2000-01-01; the unix port from 1970.
_EPOCH_2000 = 946684800


def _since_boot_us():
    # As on the chip, ticks start again at every boot (a deep-sleep wake is a boot).
    return _board.now_us() - _board.boot["vt"] + _board.boot.get("ticks0", 0)


def ticks_us():
    return _since_boot_us() & _MASK


def ticks_ms():
    return (_since_boot_us() // 1000) & _MASK


def ticks_cpu():
    return ticks_us()


def ticks_add(ticks, delta):
    return (ticks + delta) & _MASK


def ticks_diff(end, start):
    return ((end - start + _HALF) & _MASK) - _HALF


def sleep_us(us):
    _board.sleep_us(us)


def sleep_ms(ms):
    _board.sleep_us(ms * 1000)


def sleep(seconds):
    _board.sleep_us(int(seconds * 1000000))


def time():
    return _board.boot["epoch"] + _board.now_us() // 1000000


def time_ns():
    return (_board.boot["epoch"] * 1000000 + _board.now_us()) * 1000


def gmtime(secs=None):
    import utime
    return utime.gmtime((time() if secs is None else secs) + _EPOCH_2000)


localtime = gmtime
