"""mpremote attaches to a virtual board's port as to an ESP32's: files, code, resets."""
import hashlib

import serial

from hil_tests.virtual.board import DEEPSLEEP_RESET, HARD_RESET, SOFT_RESET
from tests.virtual_board.conftest import mpremote


def test_mpremote_lists_the_flash_as_the_boards_filesystem(board_at_repl):
    listing = mpremote(board_at_repl.port, "fs", "ls", ":", log=board_at_repl.log_path)
    entries = {line.split()[-1]: line.split()[0] for line in listing.splitlines()[1:]}
    assert entries["main.py"] == str(len('print("main.py ran")\n'))
    assert "config.json" in entries and "lib/" in entries


def test_a_file_copied_to_the_board_lands_in_its_flash_and_copies_back(board_at_repl,
                                                                       tmp_path):
    board = board_at_repl
    local = tmp_path / "notes.txt"
    local.write_bytes(b"bin 42: emptied on Tuesday\n" * 40)
    mpremote(board.port, "fs", "cp", str(local), ":", log=board.log_path)
    assert (board.flash / "notes.txt").read_bytes() == local.read_bytes()
    back = tmp_path / "back.txt"
    mpremote(board.port, "fs", "cp", ":notes.txt", str(back), log=board.log_path)
    assert back.read_bytes() == local.read_bytes()
    shown = mpremote(board.port, "fs", "cat", ":notes.txt", log=board.log_path)
    assert shown == local.read_text()
    digest = mpremote(board.port, "fs", "sha256sum", ":notes.txt", log=board.log_path)
    assert hashlib.sha256(local.read_bytes()).hexdigest() in digest


def test_absolute_paths_stay_inside_the_flash(board_at_repl):
    board = board_at_repl
    mpremote(board.port, "fs", "mkdir", ":/data", log=board.log_path)
    mpremote(board.port, "exec", "open('/data/x', 'w').write('1')", log=board.log_path)
    assert (board.flash / "data" / "x").read_text() == "1"


def test_exec_runs_code_on_the_board_and_prints_on_the_host(board_at_repl):
    assert mpremote(board_at_repl.port, "exec", "print(1+1)", log=board_at_repl.log_path) == "2\n"


def test_soft_reset_keeps_rtc_memory_and_says_soft_reboot(board_at_repl):
    board = board_at_repl
    mpremote(board.port, "exec", "import machine; machine.RTC().memory(b'kept')",
             log=board.log_path)
    mpremote(board.port, "soft-reset", log=board.log_path)
    said = mpremote(board.port, "exec", "import machine; "
                    "print(machine.reset_cause(), machine.RTC().memory())", log=board.log_path)
    assert said.split() == [str(SOFT_RESET), "b'kept'"]
    board.expect(r"^MPY: soft reboot$")


def test_mpremote_stops_a_board_that_deep_sleeps_in_a_loop_and_reset_restarts_it(
        make_pty_board):
    board = make_pty_board(main="import machine\n"
                                "print('woke', machine.reset_cause())\n"
                                "machine.deepsleep(60000)\n")
    board.expect(r"woke %d" % DEEPSLEEP_RESET)  # the board runs freely through its sleeps
    said = mpremote(board.port, "exec", "import machine; print(machine.reset_cause())",
                    log=board.log_path)
    assert said == "%d\n" % SOFT_RESET
    assert board.vt >= 60 * 1000000
    seen = len(board.console)
    mpremote(board.port, "reset", log=board.log_path)
    board.expect(r"woke %d" % HARD_RESET, start=seen)
    board.expect(r"woke %d" % DEEPSLEEP_RESET, start=seen)


def test_ctrl_c_stops_main_py_and_the_board_waits_at_the_repl(make_pty_board):
    board = make_pty_board(main="import time\nprint('working')\nwhile True:\n"
                                "    time.sleep_ms(10)\n")
    board.expect("working")
    with serial.Serial(board.port, 115200, timeout=5) as port:
        port.write(b"\x03")
        board.expect(r"^KeyboardInterrupt")
        board.expect(r'Type "help\(\)"')
        port.write(b"print(6*7)\r")
        board.expect(r"^42$")
