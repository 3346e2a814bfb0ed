# `esp32` on the virtual board: only what the firmware uses.
import _board

WAKEUP_ALL_LOW = 0
WAKEUP_ANY_HIGH = 1


def wake_on_ext0(pin, level):
    _board.request("wake_ext0", pin=pin.id, level=level)


def raw_temperature():
    return 120
