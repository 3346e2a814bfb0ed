"""The adaptive spreading factor (firmware lora.adr) end to end: nodes running the unchanged
firmware on the simulated air, a concentrator gateway (all SFs) feeding a real gateway
process. A node next to the gateway starting at SF12 steps down to SF7 as its receipts come
in with a wide margin; a node too far for SF7 steps up until its uplinks get through."""
import secrets
import shutil
import socket
import threading

import pytest

from hil_tests.virtual import kits
from hil_tests.virtual.air import Air
from hil_tests.virtual.board import VirtualBoard, deploy
from hil_tests.virtual.packet_forwarder import PacketForwarder
from tests.gateway.broker import free_port
from tools.fleet import Gateway

EUI = "aa555a0000000003"
CHANNEL = 868100000
# (device id, address, distance from the gateway in m, first SF). At 5 km the log-distance
# model gives an SNR of about -11 dB: below SF7's and SF8's limits (-7.5, -10 dB), above
# SF9's (-12.5 dB). At 200 m the SNR is far above every limit.
NODES = (("fill-near", 0x0D0001, 200.0, 12), ("fill-far", 0x0D0002, 5000.0, 7))
CYCLES = 24


@pytest.fixture
def adr_fleet(tmp_path):
    (tmp_path / "keys").mkdir()
    lines, keys = [], {}
    for device_id, addr, _, _ in NODES:
        keys[device_id] = secrets.token_bytes(16)
        key_file = tmp_path / "keys" / (device_id + ".key")
        key_file.write_text(keys[device_id].hex())
        key_file.chmod(0o600)
        lines += ["[[device]]", 'id = "%s"' % device_id, 'kind = "fill"',
                  'addr = "%06x"' % addr, 'key_file = "keys/%s.key"' % device_id,
                  "interval_s = 600", ""]
    (tmp_path / "fleet.toml").write_text("\n".join(lines))
    port = free_port(socket.SOCK_DGRAM)
    gateway = Gateway(tmp_path, free_port(socket.SOCK_DGRAM), free_port(), extra=(
        '\n[ingress]\ndedup_window_s = 0\n[ingress.semtech]\nenabled = true\nport = %d\n'
        'gateway_euis = ["%s"]\n' % (port, EUI)))
    air = Air(answer_timeout=2.0)
    forwarder = PacketForwarder(air, ("127.0.0.1", port), eui=EUI).start()
    image = deploy(tmp_path / "image")
    boards = {}
    for n, (device_id, addr, distance, sf) in enumerate(NODES):
        flash = tmp_path / device_id / "flash"
        shutil.copytree(image, flash)
        # max_wait_ms: at SF12 a frame closes the sub-band for over two minutes.
        deploy(flash, packages=(), key=keys[device_id], config=kits.node_config(
            "fill", addr=addr, gateway_port=1, device_id=device_id, transports=["lora"],
            lora={"sf": sf, "adr": True, "channels": [CHANNEL], "max_wait_ms": 300000}))
        radio, *pins = kits.lora_models(air, position=(distance, 0.0), name=device_id)
        board = VirtualBoard(flash, name=device_id, log_dir=flash.parent, heap="128K",
                             models=[*kits.kit("fill").models(), radio, *pins],
                             vt_start_us=n * 7 * 10 ** 6)
        board.radio = radio
        boards[device_id] = board
    yield gateway, air, forwarder, boards
    for board in boards.values():
        board.close()
    forwarder.close()
    gateway.stop()


def test_the_spreading_factor_follows_the_receipts_link_quality(adr_fleet):
    gateway, air, forwarder, boards = adr_fleet
    errors = []

    def run(board):
        try:
            board.run(CYCLES, timeout=120)
        except Exception as e:  # reported by the test, not lost in a thread
            errors.append(e)
        finally:
            air.leave(board.radio)

    threads = [threading.Thread(target=run, args=(b,)) for b in boards.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    near, far = boards["fill-near"], boards["fill-far"]

    # Near: every receipt has a wide margin; four in a row take the SF one step down.
    sfs = [f.sf for f in near.radio.sent]
    assert sfs[0] == 12 and sfs[-1] == 7
    assert all(b - a in (0, -1) for a, b in zip(sfs, sfs[1:])), sfs
    for sf in (12, 11, 10, 9, 8):
        assert sfs.count(sf) == 4, sfs
    for step in ("SF12 -> SF11", "SF11 -> SF10", "SF10 -> SF9", "SF9 -> SF8", "SF8 -> SF7"):
        near.expect("lora: " + step)

    # Far: three uplinks without a receipt take it one step up, until SF9 gets through;
    # there the margin is small, so it stays.
    sent = far.radio.sent
    fates = {e["frame"]: e["fate"] for e in air.log if e["receiver"] == forwarder.label}
    assert [f.sf for f in sent[:6]] == [7, 7, 7, 8, 8, 8]
    assert all(fates[f.id] == "too weak" for f in sent[:6])
    assert {f.sf for f in sent[6:]} == {9} and len(sent) > 10
    assert all(fates[f.id] == "delivered" for f in sent[6:])
    far.expect("lora: SF7 -> SF8")
    far.expect("lora: SF8 -> SF9")

    accepted = {d["id"]: d["uplinks"] for d in gateway.get("/api/devices")}
    assert accepted["fill-far"] >= CYCLES - 6 and accepted["fill-near"] >= CYCLES
