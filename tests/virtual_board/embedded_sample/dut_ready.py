"""A bench test as pytest-embedded runs it against a board on a serial port:

  pytest tests/virtual_board/embedded_sample/dut_ready.py --embedded-services serial --port=/dev/ttyUSB0

tests/virtual_board/test_embedded.py runs it against a virtual board's port. (Its name does
not start with test_, so the project's own test run does not collect it.)"""
import re


def test_the_board_restarts_and_answers_at_its_repl(dut):
    dut.write("\x03")  # whatever runs stops: the REPL
    dut.write("\x04")  # a soft reset at the REPL: boot.py, main.py, then the REPL again
    dut.expect_exact("MPY: soft reboot")
    dut.expect(re.compile(rb"MicroPython .*\n"))  # the banner: the REPL is up
    dut.write('print("ready")')
    dut.expect(re.compile(rb"\nready\r?\n"))
