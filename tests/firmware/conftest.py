"""Fixtures for the node firmware on virtual boards: a flash with the firmware deployed as
.mpy (compiled once per session), a Wi-Fi receiver that checks frames as the gateway does,
and boards wired to the device models of their kind's kit."""
import shutil

import pytest

from hil_tests.virtual.board import VirtualBoard, deploy
from hil_tests.virtual.kits import kit, node_config
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
    return node_config("fill", addr=ADDR, gateway_port=receiver.port, device_id="bin-0042",
                       **changes)


@pytest.fixture
def make_board(tmp_path, firmware_image, receiver):
    """make_board(config=None, models=None, kind="fill", **board options) -> a VirtualBoard
    with the firmware, the config (default: a node of that kind talking to `receiver`), the
    key, and the kit's device models."""
    boards = []

    def make(config=None, models=None, key=KEY, name="node", kind="fill", **options):
        flash = tmp_path / name / "flash"
        shutil.copytree(firmware_image, flash)
        config = config or node_config(kind, addr=ADDR, gateway_port=receiver.port)
        deploy(flash, packages=(), config=config, key=key)
        board = VirtualBoard(flash, name=name, log_dir=tmp_path,
                             models=models if models is not None else kit(config["kind"]).models(),
                             **options)
        boards.append(board)
        return board

    yield make
    for board in boards:
        board.close()


@pytest.fixture
def script_board(tmp_path, firmware_image):
    """script_board(main_py, radio) -> (board, radio): a board with the firmware and a main.py
    of its own, wired to a radio model (the drivers' tests)."""
    boards = []

    def make(main_py, radio):
        flash = tmp_path / ("board%d" % len(boards)) / "flash"
        shutil.copytree(firmware_image, flash)
        (flash / "main.py").write_text(main_py)
        board = VirtualBoard(flash, name="radio%d" % len(boards), log_dir=tmp_path,
                             models=[radio, *radio.pins()])
        boards.append(board)
        return board, radio

    yield make
    for board in boards:
        board.close()
