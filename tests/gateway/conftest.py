import shutil

import pytest

from tests.gateway.broker import MOSQUITTO, Mosquitto
from tests.gateway.harness import make_fleet


@pytest.fixture
def broker(tmp_path):
    if not shutil.which(MOSQUITTO):
        pytest.fail("%s is missing: run ./scripts/setup (it installs Debian's mosquitto)"
                    % MOSQUITTO)
    b = Mosquitto(tmp_path / "mosquitto")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def fleet(tmp_path):
    """(inventory path, devices): one device of each kind."""
    return make_fleet(tmp_path / "fleet", n=4)
