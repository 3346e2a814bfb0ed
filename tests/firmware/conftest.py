"""Fixtures for the node firmware on virtual boards: a flash with the firmware deployed as
.mpy (compiled once per session), a Wi-Fi receiver that checks frames as the gateway does,
and boards wired to device models."""
import shutil

import pytest

from hil_tests.virtual.board import VirtualBoard, deploy
from hil_tests.virtual.models.battery import BatteryADC
from hil_tests.virtual.models.jsnsr04t import JSNSR04T
from hil_tests.virtual.receiver import Receiver

KEY = bytes(range(16))
ADDR = 0x12AB34


@pytest.fixture(scope="session")
def firmware_image(tmp_path_factory):
    return deploy(tmp_path_factory.mktemp("image"))


@pytest.fixture
def receiver():
    rx = Receiver({ADDR: KEY})
    yield rx
    rx.close()


def fill_config(receiver, **changes):
    cfg = {"device_id": "bin-0042", "addr": "%06x" % ADDR, "kind": "fill", "interval_s": 600,
           "status_every": 6, "wdt_ms": 20000,
           "wifi": {"ssid": "city", "gateway": "127.0.0.1", "port": receiver.port,
                    "rx_window_ms": 300},
           "sensors": {"trigger": 5, "echo": 18}, "settings": {"depth_mm": 1200, "blind_mm": 250}}
    cfg.update(changes)
    return cfg


@pytest.fixture
def make_board(tmp_path, firmware_image, receiver):
    """make_board(config=None, models=None, **board options) -> a VirtualBoard with the
    firmware, the config (default: a fill node talking to `receiver`) and the key."""
    boards = []

    def make(config=None, models=None, key=KEY, name="node", **options):
        flash = tmp_path / name / "flash"
        shutil.copytree(firmware_image, flash)
        deploy(flash, packages=(), config=config or fill_config(receiver), key=key)
        board = VirtualBoard(flash, name=name, log_dir=tmp_path,
                             models=models or [BatteryADC(volts=3.7), JSNSR04T(distance_mm=700)],
                             **options)
        boards.append(board)
        return board

    yield make
    for board in boards:
        board.close()
