"""The bench suite catches what a bench would: run against a deliberately broken copy of the
firmware on a virtual fill-level board, it fails, and says why in words a technician can act
on, in its output and in the board's report."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def broken_firmware(tmp_path):
    firmware = tmp_path / "firmware"
    shutil.copytree(ROOT / "firmware", firmware,
                    ignore=shutil.ignore_patterns("__pycache__", "*.md"))
    # The rangefinder's driver never hears an echo, as with the module unplugged.
    driver = firmware / "sensors" / "jsnsr04t.py"
    text = driver.read_text()
    call = "us = time_pulse_us(self._echo, 1, _ECHO_TIMEOUT_US)"
    assert call in text, "jsnsr04t.py changed: update this test's breakage"
    driver.write_text(text.replace(call, "us = -2  # never answers"))
    # The frame counter forgets its flash reservation: it starts at 0 on every cold boot.
    counter = firmware / "node" / "counter.py"
    text = counter.read_text()
    read = "return int(f.read())"
    assert read in text, "counter.py changed: update this test's breakage"
    counter.write_text(text.replace(read, "return 0"))
    return firmware


def test_the_bench_suite_fails_broken_firmware_with_a_message_a_technician_can_act_on(
        tmp_path):
    firmware = broken_firmware(tmp_path)
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "hil_tests", "--kind=fill", "--firmware=%s" % firmware,
         "--report-dir=%s" % reports, "-k", "plausible or reset_mid_cycle",
         "--root-logdir=%s" % (tmp_path / "logs"), "-p", "no:cacheprovider"],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert re.search(r"2 failed", out), out
    # The dead sensor: named, with its fault in words and what to check.
    assert "the fill sensor reports fault 4 (timeout: no data in time): check its cable" in out, out
    # The counter that resets: the consequence at the gateway and the verdict.
    assert re.search(r"the gateway rejected \d+ frame\(s\) from hil-fill as replays: the "
                     r"board reused frame counters", out), out
    assert "do not ship this firmware" in out, out
    # And the failures point at the board's console log.
    assert re.search(r"full console log: \S+dut.log", out), out
    (folder,) = reports.iterdir()
    assert folder.name.endswith("_virtual-fill")
    summary = (folder / "summary.txt").read_text()
    assert summary.startswith("cityedge bench report: FAIL"), summary
    assert re.search(r"FAILED\s+test_the_sensor_answers_with_a_plausible_reading", summary)
    assert re.search(r"FAILED\s+test_a_reset_mid_cycle_reuses_no_frame_counter", summary)
    junit = (folder / "junit.xml").read_text()
    assert 'failures="2"' in junit and "reused frame counters" in junit
