"""The virtual packet forwarder against a small UDP server written in the test from
Semtech's PROTOCOL.TXT (version 2): datagrams checked byte by byte."""
import base64
import json
import queue
import socket
import threading
from datetime import datetime, timezone

import pytest

from hil_tests.virtual.air import Air, Modulation, Transmitter
from hil_tests.virtual.models import sx127x as chip
from hil_tests.virtual.packet_forwarder import PacketForwarder, UNIX_AT_VT0
from tests.lora.test_sx127x_model import Host

EUI = "aa555a0000000101"
SF9 = Modulation(868100000, 9)


class Server:
    """A network server's UDP port: records datagrams, acks PUSH_DATA and PULL_DATA, and
    answers an uplink with `downlink(rxpk)` (a txpk dict, or None) if set."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.addr = self.sock.getsockname()
        self.datagrams = queue.Queue()
        self.gateway = None
        self.downlink = None
        self.answer_delay = 0.0   # seconds before the PULL_RESP: a slow network server
        self.ack = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.datagrams.put(data)
            if data[3] == 0x02:
                self.gateway = addr
                self.sock.sendto(data[:3] + b"\x04", addr)
            elif data[3] == 0x00:
                if self.ack:
                    self.sock.sendto(data[:3] + b"\x01", addr)
                if self.downlink:
                    for rxpk in json.loads(data[12:])["rxpk"]:
                        txpk = self.downlink(rxpk)
                        if txpk:
                            self._stop.wait(self.answer_delay)
                            self.send_txpk(txpk, b"\x77\x01")

    def send_txpk(self, txpk, token=b"\x12\x34", raw=None):
        body = raw if raw is not None else json.dumps({"txpk": txpk}).encode()
        self.sock.sendto(b"\x02" + token + b"\x03" + body, self.gateway)

    def next(self, kind, timeout=3.0):
        while True:
            data = self.datagrams.get(timeout=timeout)
            if data[3] == kind:
                return data

    def close(self):
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def air():
    return Air(answer_timeout=0.3, max_wait=5)


def txpk_for(rxpk, delay_us=1000000, **changes):
    txpk = {"imme": False, "tmst": (rxpk["tmst"] + delay_us) & 0xFFFFFFFF, "freq": rxpk["freq"],
            "rfch": 0, "powe": 14, "modu": "LORA", "datr": rxpk["datr"], "codr": "4/5",
            "ipol": True, "size": 3, "data": base64.b64encode(b"cmd").decode()}
    txpk.update(changes)
    return txpk


def test_pull_data_carries_version_token_identifier_and_eui_and_is_kept_alive(air, server):
    with PacketForwarder(air, server.addr, eui=EUI, keepalive_s=0.2) as gw:
        first = server.next(0x02)
        assert len(first) == 12 and first[0] == 2 and first[4:12] == bytes.fromhex(EUI)
        again = server.next(0x02, timeout=2)
        assert again[4:12] == first[4:12]
    assert gw.pull_acks >= 1


def test_uplink_is_pushed_as_rxpk_with_spec_fields_and_acked(air, server):
    node = Transmitter("node", (300.0, 0.0))
    air.join(node)
    with PacketForwarder(air, server.addr, eui=EUI, tmst_offset_us=(1 << 32) - 1000) as gw:
        server.next(0x02)
        frame = node.send(air, b"\x01\x02\x03hello", 5 * 10 ** 6, SF9)
        node.now = frame.end
        data = server.next(0x00)
        assert data[0] == 2 and data[4:12] == bytes.fromhex(EUI)
        rxpk = json.loads(data[12:])["rxpk"][0]
        assert rxpk["tmst"] == (frame.end - 1000) & 0xFFFFFFFF   # the counter wrapped
        assert rxpk["freq"] == 868.1 and rxpk["chan"] == 5 and rxpk["rfch"] == 0
        assert rxpk["modu"] == "LORA" and rxpk["datr"] == "SF9BW125"
        assert rxpk["codr"] == "4/5" and rxpk["stat"] == 1 and rxpk["size"] == 8
        assert base64.b64decode(rxpk["data"]) == b"\x01\x02\x03hello"
        assert rxpk["rssi"] == round(14 - (31.2 + 30 * 2.4771), 0)
        assert rxpk["lsnr"] == pytest.approx(rxpk["rssi"] + 117.03, abs=0.6)
        when = datetime.strptime(rxpk["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert when.replace(tzinfo=timezone.utc).timestamp() == pytest.approx(
            UNIX_AT_VT0 + frame.end / 1e6, abs=1e-5)
        for _ in range(100):
            if gw.push_acks:
                break
            threading.Event().wait(0.01)
        assert gw.push_acks == {data[1:3]}


def test_two_gateways_both_push_the_same_frame(air, server):
    node = Transmitter("node", (300.0, 0.0))
    air.join(node)
    with PacketForwarder(air, server.addr, eui=EUI, position=(0.0, 0.0)), \
            PacketForwarder(air, server.addr, eui="aa555a0000000202", position=(2000.0, 0.0)):
        frame = node.send(air, b"both", 0, SF9)
        node.now = frame.end
        pushes = [server.next(0x00), server.next(0x00)]
        euis = sorted(p[4:12].hex() for p in pushes)
        assert euis == ["aa555a0000000101", "aa555a0000000202"]
        rssis = sorted(json.loads(p[12:])["rxpk"][0]["rssi"] for p in pushes)
        assert rssis[0] < rssis[1] - 20   # 300 m and 1700 m away


def pushed_rxpk(air, server, node):
    frame = node.send(air, b"up", 0, SF9)
    node.now = frame.end
    return frame, json.loads(server.next(0x00)[12:])["rxpk"][0]


def test_pull_resp_goes_on_air_at_tmst_with_inverted_iq_and_tx_ack_none(air, server):
    node = Transmitter("node", (300.0, 0.0))
    air.join(node)
    with PacketForwarder(air, server.addr, eui=EUI):
        server.next(0x02)
        frame, rxpk = pushed_rxpk(air, server, node)
        server.send_txpk(txpk_for(rxpk), token=b"\xab\xcd")
        ack = server.next(0x05)
        assert ack[:4] == b"\x02\xab\xcd\x05" and ack[4:12] == bytes.fromhex(EUI)
        assert json.loads(ack[12:]) == {"txpk_ack": {"error": "NONE"}}
        down = air.frames[-1]
        assert down.start == frame.end + 1000000 and down.iq_inverted
        assert down.payload == b"cmd" and down.power_dbm == 14


@pytest.mark.parametrize("changes,error", [
    ({"freq": 915.0}, "TX_FREQ"),
    ({"delay_us": -10 ** 6}, "TOO_LATE"),
    ({"delay_us": 60 * 10 ** 6}, "TOO_EARLY"),
])
def test_unsendable_downlink_is_refused_with_the_spec_error(air, server, changes, error):
    node = Transmitter("node", (300.0, 0.0))
    air.join(node)
    with PacketForwarder(air, server.addr, eui=EUI):
        server.next(0x02)
        frame, rxpk = pushed_rxpk(air, server, node)
        delay = changes.pop("delay_us", 10 ** 6)
        server.send_txpk(txpk_for(rxpk, delay, **changes))
        assert json.loads(server.next(0x05)[12:]) == {"txpk_ack": {"error": error}}
        assert air.frames[-1] is frame


def test_second_downlink_overlapping_the_first_is_a_collision_packet(air, server):
    node = Transmitter("node", (300.0, 0.0))
    air.join(node)
    with PacketForwarder(air, server.addr, eui=EUI):
        server.next(0x02)
        _, rxpk = pushed_rxpk(air, server, node)
        server.send_txpk(txpk_for(rxpk))
        server.next(0x05)
        server.send_txpk(txpk_for(rxpk, 1010000))
        assert json.loads(server.next(0x05)[12:]) == {"txpk_ack": {"error": "COLLISION_PACKET"}}


def test_too_much_power_is_clamped_with_a_tx_power_warning(air, server):
    node = Transmitter("node", (300.0, 0.0))
    air.join(node)
    with PacketForwarder(air, server.addr, eui=EUI, max_power_dbm=14):
        server.next(0x02)
        _, rxpk = pushed_rxpk(air, server, node)
        server.send_txpk(txpk_for(rxpk, powe=27))
        ack = json.loads(server.next(0x05)[12:])["txpk_ack"]
        assert ack == {"warn": "TX_POWER", "value": 14}
        assert air.frames[-1].power_dbm == 14


@pytest.mark.parametrize("raw", [b"{not json", b'{"txpk":{"datr":"SF9BW125"}}',
                                 b'{"txpk":{"tmst":1,"freq":868.1,"datr":"SF9BW125",'
                                 b'"codr":"4/5","data":"!!!"}}'])
def test_malformed_pull_resp_is_dropped_and_recorded(air, server, raw):
    with PacketForwarder(air, server.addr, eui=EUI) as gw:
        server.next(0x02)
        server.send_txpk(None, raw=raw)
        for _ in range(100):
            if gw.errors:
                break
            threading.Event().wait(0.01)
        assert gw.errors and "bad PULL_RESP" in gw.errors[0][0]
        with pytest.raises(queue.Empty):
            server.next(0x05, timeout=0.2)


def test_sx127x_node_hears_the_answer_to_its_uplink_in_its_receive_window(air, server):
    """Registers only: the node sends, the server answers the rxpk 1 s after its tmst, the
    node opens RXSINGLE with inverted IQ at that time and gets the downlink."""
    radio = chip.SX127x(air=air, name="node-1", position=(400.0, 0.0))
    host = Host(radio)
    server.downlink = txpk_for
    with PacketForwarder(air, server.addr, eui=EUI):
        server.next(0x02)
        host.lora_standby()
        host.write(chip.REG_PA_CONFIG, 0x80 | 12)
        host.write(chip.REG_FIFO_ADDR_PTR, 0x80)
        host.write(chip.REG_FIFO, *b"reading")
        host.write(chip.REG_PAYLOAD_LENGTH, 7)
        host.write(chip.REG_OP_MODE, 0x83)
        end = radio.sent[0].end
        host.vt = end
        assert host.read(chip.REG_IRQ_FLAGS) == chip.IRQ_TX_DONE
        host.write(chip.REG_IRQ_FLAGS, 0xFF)
        host.write(chip.REG_INVERT_IQ, 0x66)      # RX inverted, TX normal
        host.write(chip.REG_INVERT_IQ2, 0x19)
        host.write(chip.REG_SYMB_TIMEOUT_LSB, 8)
        host.vt = end + 1000000 - 2000           # open the window 2 ms early
        host.write(chip.REG_OP_MODE, 0x86)
        ack = json.loads(server.next(0x05)[12:])
        assert ack == {"txpk_ack": {"error": "NONE"}}
        down = air.frames[-1]
        host.vt = down.end
        assert host.read(chip.REG_IRQ_FLAGS) & chip.IRQ_RX_DONE
        host.write(chip.REG_FIFO_ADDR_PTR, host.read(chip.REG_FIFO_RX_CURRENT))
        assert bytes(host.read(chip.REG_FIFO, host.read(chip.REG_RX_NB_BYTES))) == b"cmd"
    assert [e["fate"] for e in air.log] == ["delivered", "delivered"]
