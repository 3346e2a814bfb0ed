"""A serial test harness (pytest-embedded) attaches to a virtual board's port."""
import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).parent / "embedded_sample" / "dut_ready.py"
ROOT = Path(__file__).resolve().parents[2]


def test_pytest_embedded_drives_a_virtual_board_through_its_port(board_at_repl, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(SAMPLE), "--embedded-services", "serial",
         "--port=" + board_at_repl.port, "--root-logdir", str(tmp_path / "embedded"),
         "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    board_at_repl.expect(r"^MPY: soft reboot$")
