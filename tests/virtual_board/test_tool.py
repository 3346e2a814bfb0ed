"""tools/virtual-board: one command starts a virtual board and prints its port."""
import os
import queue
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from hil_tests.virtual.receiver import Receiver
from tests.virtual_board.conftest import mpremote

TOOL = str(Path(__file__).resolve().parents[2] / "tools" / "virtual-board")
KEY = bytes(range(16))


@pytest.fixture
def tool(tmp_path):
    """tool(*args) -> (the process, {"port": ..., "flash": ..., ...} from what it printed)."""
    procs = []
    env = dict(os.environ, TMPDIR=str(tmp_path))  # its default flash folder goes there

    def start(*args, lines=3):
        proc = subprocess.Popen([TOOL, *args], stdout=subprocess.PIPE, text=True, env=env)
        procs.append(proc)
        out = queue.Queue()
        threading.Thread(target=lambda: [out.put(line) for line in proc.stdout],
                         daemon=True).start()
        said = {}
        for _ in range(lines):
            try:
                line = out.get(timeout=30)
            except queue.Empty:
                raise AssertionError("tools/virtual-board printed only %r" % said) from None
            key, _, value = line.rstrip("\n").partition(": ")
            said[key] = value
        return proc, said

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def test_virtual_board_prints_its_port_and_mpremote_lists_its_files(tool, tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text("print('hello')\n")
    (flash / "config.json").write_text("{}\n")
    proc, said = tool("--flash", str(flash))
    assert said["port"].startswith("/dev/pts/") and said["flash"] == str(flash)
    listing = mpremote(said["port"], "fs", "ls", log=said["console log"])
    assert "config.json" in listing and "main.py" in listing
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def test_a_fresh_virtual_board_has_only_micropython_and_its_repl(tool):
    proc, said = tool()
    assert mpremote(said["port"], "exec", "import os; print(os.listdir())",
                    log=said["console log"]) == "['rom']\n"


@pytest.fixture
def receiver():
    rx = Receiver({0x12AB34: KEY})
    yield rx
    rx.close()


def test_a_deployed_virtual_board_sends_real_readings_to_the_gateway(receiver, tool, tmp_path):
    proc, said = tool("--deploy", "--flash", str(tmp_path / "flash"), "--key", KEY.hex(),
                      "--gateway", "127.0.0.1:%d" % receiver.port, lines=4)
    assert "address 12ab34" in said["device"]
    receiver.wait_for(lambda rx: len(rx.readings("fill")) >= 2, timeout=30)
    assert (tmp_path / "flash" / "device.key").read_text() == KEY.hex()
