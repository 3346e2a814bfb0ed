"""The shim stands in for what an ESP32 has built in (machine, network, socket, time, esp32):
the virtual board gives the interpreter SHIM_HEAP on top of the firmware's heap cap, so the
shim must fit in it, or the firmware would be measured with less heap than the chip has."""
import subprocess

from hil_tests.virtual.board import SHIM_HEAP, compiled_shim
from tools import mpybuild

MEASURE = """
import gc
gc.collect()
before = gc.mem_alloc()
import _board, time, machine, network, socket, esp32
import _m_adc, _m_i2c, _m_pwm, _m_spi, _m_uart
gc.collect()
print(gc.mem_alloc() - before)
"""


def test_the_shim_fits_in_the_heap_the_board_adds_for_it(tmp_path):
    script = tmp_path / "measure.py"
    script.write_text(MEASURE)
    result = subprocess.run([mpybuild.micropython_binary(), "-X", "heapsize=256K", str(script)],
                            env={"MICROPYPATH": "%s:.frozen" % compiled_shim()},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    used = int(result.stdout.split()[-1])
    assert used <= SHIM_HEAP, "the shim takes %d bytes, more than SHIM_HEAP (%d)" % (
        used, SHIM_HEAP)
