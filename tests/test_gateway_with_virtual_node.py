"""The gateway process and the unchanged firmware on a virtual board, over Wi-Fi (UDP): a
command queued through the gateway's HTTP API reaches the node in the reply window of its
next uplink, is applied, and is acknowledged back to the gateway."""
import json
import secrets
import shutil
import socket
import urllib.request

import pytest

from hil_tests.virtual import kits
from hil_tests.virtual.board import VirtualBoard, deploy
from tests.gateway.broker import free_port
from tools.fleet import Gateway



@pytest.fixture
def gateway_and_node(tmp_path):
    key = secrets.token_bytes(16)
    (tmp_path / "keys").mkdir()
    key_file = tmp_path / "keys" / "fill-0042.key"
    key_file.write_text(key.hex())
    key_file.chmod(0o600)
    (tmp_path / "fleet.toml").write_text(
        '[[device]]\nid = "fill-0042"\nkind = "fill"\naddr = "0a0042"\n'
        'key_file = "keys/fill-0042.key"\ninterval_s = 600\n')
    udp = free_port(socket.SOCK_DGRAM)
    gateway = Gateway(tmp_path, udp, free_port())
    flash = deploy(tmp_path / "board" / "flash", key=key, config=kits.node_config(
        "fill", addr=0x0A0042, gateway_port=udp, device_id="fill-0042"))
    board = VirtualBoard(flash, name="fill-0042", log_dir=tmp_path,
                         models=kits.kit("fill").models())
    yield gateway, board
    board.close()
    gateway.stop()
    shutil.rmtree(tmp_path / "board", ignore_errors=True)


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.loads(reply.read())


def test_a_command_queued_by_the_api_reaches_the_virtual_node_and_is_acknowledged(
        gateway_and_node):
    gateway, board = gateway_and_node
    first = board.run(1)[0]
    assert first.end == "deepsleep" and 590000 < first.sleep_ms <= 600000
    queued = post(gateway.url + "/api/devices/fill-0042/commands",
                  {"command": "set_interval", "arg": 300})
    run = board.run(1)[0]
    board.expect(r"command %d set_interval 300 -> 0" % queued["command_id"])
    assert 290000 < run.sleep_ms <= 300000  # applied in this very cycle
    commands = gateway.get("/api/devices/fill-0042/commands")
    (mine,) = [c for c in commands if c["command_id"] == queued["command_id"]]
    assert mine["state"] == "acked" and mine["result"] == "ok", mine
    readings = gateway.get("/api/devices/fill-0042/readings")
    assert len(readings) >= 2
