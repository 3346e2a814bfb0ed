# What an ESP32 does at power-on, for the unix port: connect to the board host, then run
# boot.py and main.py from the flash directory (the process's working directory).
import sys
import _board

_board.start()


def _run(name):
    try:
        open(name).close()
    except OSError:
        return
    try:
        exec(open(name).read(), {"__name__": "__main__"})
    except KeyboardInterrupt:
        print("KeyboardInterrupt in", name)
    except SystemExit:
        raise
    except Exception as e:  # the board prints it and carries on to the REPL, as an ESP32 does
        sys.print_exception(e)


_run("boot.py")
if _board.boot.get("run_main", True):
    _run("main.py")
