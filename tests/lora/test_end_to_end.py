"""End to end over LoRa: virtual nodes running the unchanged firmware send through the
simulated air to two packet forwarders, which feed a real gateway process over the Semtech
UDP protocol. Every uplink the air delivered is accepted exactly once (both gateways hear
it), and a command queued at the gateway reaches its node in a receive window and is
acknowledged."""
import json
import secrets
import shutil
import socket
import threading
import urllib.request

import pytest

from hil_tests.virtual import kits
from hil_tests.virtual.air import Air
from hil_tests.virtual.board import VirtualBoard, deploy
from hil_tests.virtual.packet_forwarder import PacketForwarder
from tests.gateway.broker import free_port
from tools.fleet import Gateway

EUIS = ("aa555a0000000001", "aa555a0000000002")
NODES = 3
CYCLES = 2
SEMTECH = """
[ingress.semtech]
enabled = true
port = {port}
gateway_euis = [{euis}]
"""


def post(url, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.loads(reply.read())


@pytest.fixture
def lora_fleet(tmp_path):
    (tmp_path / "keys").mkdir()
    lines, nodes = [], []
    for n in range(NODES):
        device_id, addr, key = "fill-%04d" % n, 0x0B0000 + n, secrets.token_bytes(16)
        key_file = tmp_path / "keys" / (device_id + ".key")
        key_file.write_text(key.hex())
        key_file.chmod(0o600)
        lines += ["[[device]]", 'id = "%s"' % device_id, 'kind = "fill"',
                  'addr = "%06x"' % addr, 'key_file = "keys/%s.key"' % device_id,
                  "interval_s = 600", ""]
        nodes.append((device_id, addr, key))
    (tmp_path / "fleet.toml").write_text("\n".join(lines))
    semtech_port = free_port(socket.SOCK_DGRAM)
    gateway = Gateway(tmp_path, free_port(socket.SOCK_DGRAM), free_port(),
                      extra=SEMTECH.format(port=semtech_port,
                                           euis=", ".join('"%s"' % e for e in EUIS)))
    air = Air(answer_timeout=1.0)
    forwarders = [PacketForwarder(air, ("127.0.0.1", semtech_port), eui=eui,
                                  position=position).start()
                  for eui, position in zip(EUIS, ((0.0, 0.0), (1500.0, 0.0)))]
    image = deploy(tmp_path / "image")
    boards = []
    for n, (device_id, addr, key) in enumerate(nodes):
        flash = tmp_path / device_id / "flash"
        shutil.copytree(image, flash)
        deploy(flash, packages=(), key=key, config=kits.node_config(
            "fill", addr=addr, gateway_port=1, device_id=device_id, lora=True,
            transports=["lora"]))
        radio, *pins = kits.lora_models(air, position=(300.0 + 200 * n, 100.0), name=device_id)
        board = VirtualBoard(flash, name=device_id, log_dir=flash.parent, heap="128K",
                             models=[*kits.kit("fill").models(), radio, *pins],
                             vt_start_us=n * 7 * 10 ** 6)
        board.radio = radio
        boards.append(board)
    yield gateway, air, forwarders, boards
    for board in boards:
        board.close()
    for forwarder in forwarders:
        forwarder.close()
    gateway.stop()


def run_cycles(board, air, cycles, errors):
    try:
        for _ in range(cycles):
            board.run(1, timeout=90)
    except Exception as e:  # reported by the test, not lost in a thread
        errors.append(e)
    finally:
        air.leave(board.radio)


def test_lora_fleet_frames_are_accepted_once_and_a_command_is_acknowledged(lora_fleet):
    gateway, air, forwarders, boards = lora_fleet
    queued = post(gateway.url + "/api/devices/fill-0001/commands",
                  {"command": "set_interval", "arg": 300})
    errors = []
    threads = [threading.Thread(target=run_cycles, args=(b, air, CYCLES, errors))
               for b in boards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors
    boards[1].expect(r"command %d set_interval 300 -> 0" % queued["command_id"])
    (mine,) = [c for c in gateway.get("/api/devices/fill-0001/commands")
               if c["command_id"] == queued["command_id"]]
    assert mine["state"] == "acked", mine
    heard, pushed_by_air = {}, 0
    for entry in air.log:
        if entry["receiver"].startswith("gw-") and entry["fate"] == "delivered":
            heard.setdefault(entry["sender"], set()).add(entry["frame"])
            pushed_by_air += 1
    assert sum(len(f.pushed) for f in forwarders) == pushed_by_air
    states = {d["id"]: d for d in gateway.get("/api/devices")}
    for board in boards:
        uplinks = heard.get(board.name, set())
        assert len(uplinks) >= CYCLES, (board.name, air.log)
        # Both forwarders pushed each of these frames; the gateway accepted each once.
        assert len(uplinks) * 2 == sum(e["sender"] == board.name for e in air.log
                                       if e["receiver"].startswith("gw-")
                                       and e["fate"] == "delivered")
        assert states[board.name]["uplinks"] == len(uplinks), (board.name, states[board.name])
    assert not air.waits
