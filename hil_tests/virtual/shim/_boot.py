# What an ESP32 does at power-on, for the unix port: the board host is asked why the chip
# started, the flash becomes the filesystem, then boot.py and main.py run from it as the
# ESP32 port's main.c runs them: main.py only if boot.py ended without an exception, and not
# after a soft reset in the raw REPL (the host says so with "run_main"). With a pty console
# the interpreter runs with -i, so the REPL follows when main.py ends or is interrupted.
import os
import sys
import vfs
import _board
# On an ESP32 the bus classes are built in: load them now, inside SHIM_HEAP, so a kind
# that uses UART, I2C and PWM is not charged for them out of the firmware's heap.
import _m_adc, _m_i2c, _m_pwm, _m_spi, _m_uart  # noqa: E401,F401

_board.start()

# The flash directory (the working directory) becomes "/", as on the chip, and this shim,
# the board's ROM, is mounted read-only at /rom: no path the firmware or mpremote uses can
# reach the host's own files.
_rom = __file__.rsplit("/", 1)[0]
if _board.boot.get("flash_bytes"):
    _fs = __import__("_flashfs").SizedFlash(os.getcwd(), _board.boot["flash_bytes"])
elif _board.boot.get("pty"):
    _fs = __import__("_flashfs").Flash(os.getcwd())
else:
    _fs = vfs.VfsPosix(os.getcwd())
vfs.umount("/")
vfs.mount(_fs, "/")
vfs.mount(vfs.VfsPosix(_rom), "/rom", readonly=True)
os.chdir("/")
_path = []
for _p in sys.path:
    _p = "/rom" if _p == _rom else _p
    if _p not in _path:
        _path.append(_p)
sys.path[:] = _path
del _p, _path, _rom, _fs


def _run(name):
    """Run a script from the flash if there is one; False if it raised, as pyexec says."""
    try:
        code = open(name).read()
    except OSError:
        return True
    try:
        code = compile(code, name, "exec")  # the source is freed before it runs
        exec(code, {"__name__": "__main__"})
    except SystemExit:
        raise
    except BaseException as e:  # KeyboardInterrupt too: printed, then the REPL, as on an ESP32
        sys.print_exception(e)
        return False
    return True


try:
    _board.ready()  # inside the try: a Ctrl-C can arrive from here on
    if _run("boot.py") and _board.boot.get("run_main", True):
        _run("main.py")
except KeyboardInterrupt:  # a Ctrl-C between the two scripts: on to the REPL
    pass
