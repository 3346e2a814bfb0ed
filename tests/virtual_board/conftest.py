"""Virtual boards with a pty console, attached to as to an ESP32 on a serial port: by mpremote
and by pytest-embedded."""
import subprocess
import sys
from pathlib import Path

import pytest

from hil_tests.virtual.board import VirtualBoard

MPREMOTE = str(Path(sys.executable).parent / "mpremote")
BANNER = r'Type "help\(\)" for more information'


@pytest.fixture
def make_pty_board(tmp_path):
    """make_pty_board(main=...) -> a started board with a pty console whose flash holds that
    main.py, a config.json and an empty lib/."""
    boards = []

    def make(main='print("main.py ran")\n', name="board"):
        flash = tmp_path / name / "flash"
        (flash / "lib").mkdir(parents=True)
        (flash / "main.py").write_text(main)
        (flash / "config.json").write_text('{"device_id": "bench-1"}\n')
        board = VirtualBoard(flash, name=name, log_dir=tmp_path, console="pty")
        boards.append(board)
        board.start()
        return board

    yield make
    for board in boards:
        board.close()


@pytest.fixture
def board_at_repl(make_pty_board):
    """A board whose main.py has run and ended: it waits at the REPL, as an ESP32 does."""
    board = make_pty_board()
    board.expect(BANNER)
    return board


def mpremote(port, *args, log=None, timeout=30):
    """Run `mpremote connect PORT ARGS...`; its output, or a failure that says what it said."""
    done = subprocess.run([MPREMOTE, "connect", port, *args], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, ("mpremote %s failed (%d):\n%s%s(board console: %s)"
                                  % (" ".join(args), done.returncode, done.stdout, done.stderr,
                                     log))
    return done.stdout
