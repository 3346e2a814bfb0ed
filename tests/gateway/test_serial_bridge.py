# The serial bridge ingress on a real pseudo-terminal: the test writes on the master side
# the lines a bridge writes (firmware/README.md, "LoRa serial bridge protocol"), garbage
# included, and reads back the DN lines the gateway writes to the port.
import importlib.util
import os
import select
import time
import tty

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import airtime, schema

from gateway import config as config_mod
from gateway.ingress import bridge_lines as bl
from tests.gateway.broker import wait_until
from tests.gateway.harness import GatewayThread, make_config
from tests.gateway.radio import open_down, uplink

REJECTED = "cityedge_ingress_rejected_total"


class Bridge:
    """The bridge's end of the serial line."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = b""

    def write(self, line):
        os.write(self.fd, (line if isinstance(line, bytes) else line.encode()) + b"\r\n")

    def read_line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            self.buf += os.read(self.fd, 1024)
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


@pytest.fixture
def pty_port():
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line editing: a serial line, as a USB-serial chip gives
    yield Bridge(master), os.ttyname(slave)
    os.close(master)
    os.close(slave)


def dn_fields(line):
    parts = line.split(" ")
    assert parts[0] == "DN" and len(parts) == 8, line
    return int(parts[1]), parts[2:7], bytes.fromhex(parts[7])


def test_bridge_lines_become_uplinks_and_downlinks_go_back_one_at_a_time(tmp_path, fleet,
                                                                        pty_port):
    inv, devices = fleet
    dev = devices[0]
    bridge, port = pty_port
    cfg = make_config(tmp_path, inv, serial=config_mod.SerialIngressConfig(enabled=True,
                                                                           port=port))
    with GatewayThread(cfg) as g:
        ingress = next(i for i in g.gw.ingresses if i.name == "serial")
        wait_until(lambda: g.call(lambda: ingress.writer is not None), 5, "the port open")
        cmd = g.call(lambda: g.gw.store.add_command(dev.id, "set_interval", 300,
                                                    g.gw.config.commands.ttl_s))
        for line in ["MicroPython v1.24.0 on 2026-01-01; ESP32 module with ESP32",
                     "# bridge: radio sx1276 found",
                     "READY 1 sx1276 868100000 9 125000 4/5",
                     "UP 12 zz",
                     b"\xff\xfe\x00garbage",
                     "UP 3000000 868100000 9 125000 4/5 -97 7.25 0g",
                     "UP 3000000 868100000 9 100000 4/5 -97 7.25 00",
                     "CRC 2999000 868100000 9 125000 4/5 -121 -14.5",
                     "Traceback (most recent call last):"]:
            bridge.write(line)
        frame_up = uplink(dev, 0)
        bridge.write("UP 3000123 868100000 9 125000 4/5 -97 7.25 %s" % frame_up.hex())
        heard = time.monotonic()
        first = bridge.read_line(1.0)
        # Written well inside the node's 1 s receive delay, for RX1 by the bridge's clock.
        assert first is not None and time.monotonic() - heard < 1.0
        tmst, radio, receipt = dn_fields(first)
        assert tmst == 3000123 + 1000000
        assert radio == ["868100000", "9", "125000", "4/5", "14"]
        assert open_down(dev, receipt) == (schema.RECEIPT, {"fcnt": 0, "commands": 1})
        # The bridge holds one downlink: the command waits for the receipt's answer.
        assert bridge.read_line(0.3) is None
        bridge.write("OK %d" % tmst)
        second = bridge.read_line(2.0)
        assert second is not None
        tmst2, _, command_frame = dn_fields(second)
        assert tmst2 == tmst + round(airtime.time_on_air_ms(len(receipt), 9, 125, 1) * 1000) \
            + 1000000
        kind, message = open_down(dev, command_frame)
        assert kind == schema.COMMAND and message["command_id"] == cmd["command_id"]
        bridge.write("ERR too_late")
        wait_until(lambda: g.metric("cityedge_downlink_errors_total", ingress="serial",
                                    reason="too_late") == 1, 5, "the bridge's ERR")
        wait_until(lambda: g.call(lambda: g.gw.store.command(cmd["id"]))["state"] == "queued",
                   5, "the command queued again")
        expected = {"not_protocol": 2, "bad_line": 2, "not_ascii": 1, "bad_hex": 1,
                    "crc_bad": 1}
        for reason, n in expected.items():
            assert g.metric(REJECTED, ingress="serial", reason=reason) == n, reason
        assert g.metric("cityedge_frames_accepted_total", ingress="serial") == 1
        record = g.call(lambda: g.gw.store.device_records(dev.id))[0]
        assert record["source"] == "serial"
        assert record["radio"]["receiver"] == "serial:" + port
        assert record["radio"]["snr"] == 7.25 and record["radio"]["bw"] == 125


def test_dn_line_follows_the_documented_format():
    line = bl.dn(bytes.fromhex("01a1b2c38001"), tmst=(1 << 32) + 5, frequency=868100000,
                 sf=9, bw_khz=7.8, cr="4/5", power_dbm=14)
    assert line == b"DN 5 868100000 9 7800 4/5 14 01a1b2c38001\n"
    raw, radio = bl.up(bl.split(b"UP 4294967295 868500000 12 500000 4/8 -130 -20.25 ab\r\n"))
    assert raw == b"\xab" and radio["tmst"] == 0xFFFFFFFF and radio["bw"] == 500
    with pytest.raises(bl.LineError) as e:
        bl.ready(bl.split(b"READY 2 sx1276 868100000 9 125000 4/5"))
    assert e.value.reason == "bad_version"


def _firmware_bridgeline():
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "firmware", "net", "bridgeline.py")
    spec = importlib.util.spec_from_file_location("firmware_bridgeline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gateway_and_firmware_bridge_read_each_others_lines():
    fw = _firmware_bridgeline()
    raw, radio = bl.up(bl.split((fw.up(0x1_0000_0005, 868500000, 12, 125000, 8, -131, -79,
                                       b"\x01\x02\x03") + "\r\n").encode()))
    assert raw == b"\x01\x02\x03"
    assert radio == {"rssi": -131, "snr": -19.75, "frequency": 868500000, "sf": 12,
                     "bw": 125, "cr": "4/8", "tmst": 5}
    assert bl.ready(bl.split(fw.ready("sx1276", 868100000, 9, 125000, 5).encode()))[1] \
        == "sx1276"
    kind, dn = fw.parse(bl.dn(b"\xaa\xbb", tmst=4000123, frequency=868100000, sf=9,
                              bw_khz=125, cr="4/5", power_dbm=14).decode())
    assert kind == "DN" and dn == {"tmst": 4000123, "freq_hz": 868100000, "sf": 9,
                                   "bw_hz": 125000, "cr": 5, "power": 14,
                                   "payload": b"\xaa\xbb"}


_WORD = st.one_of(st.sampled_from(["UP", "CRC", "READY", "OK", "ERR", "PONG", "1", "4/5",
                                   "125000", "868100000", "-97", "7.25", "00ff"]),
                  st.text(alphabet="0123456789abcdefxyz-./ ", max_size=12))


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=80),
                 st.lists(_WORD, max_size=10).map(lambda w: " ".join(w).encode())))
def test_any_line_is_read_or_refused_with_a_reason(data):
    try:
        line = bl.split(data)
        if line.keyword == "UP":
            bl.up(line)
        elif line.keyword == "CRC":
            bl.crc(line)
        elif line.keyword == "READY":
            bl.ready(line)
    except bl.LineError as e:
        assert e.reason in ("bad_line", "bad_hex", "bad_version", "not_ascii",
                            "line_too_long")


def test_a_bridge_that_resets_loses_its_downlink_and_the_command_is_queued_again(tmp_path,
                                                                                fleet,
                                                                                pty_port):
    inv, devices = fleet
    dev = devices[1]
    bridge, port = pty_port
    cfg = make_config(tmp_path, inv, serial=config_mod.SerialIngressConfig(enabled=True,
                                                                           port=port))
    with GatewayThread(cfg) as g:
        ingress = next(i for i in g.gw.ingresses if i.name == "serial")
        wait_until(lambda: g.call(lambda: ingress.writer is not None), 5, "the port open")
        cmd = g.call(lambda: g.gw.store.add_command(dev.id, "reboot", None,
                                                    g.gw.config.commands.ttl_s))
        bridge.write("READY 1 sx1276 868100000 9 125000 4/5")
        bridge.write("UP 100 868100000 9 125000 4/5 -90 5 %s"
                     % uplink(dev, 0, schema.PARKING, {"occupied": True, "minutes": 3,
                                                       "field_ut": 1.5, "overstay": False,
                                                       "fault": 0}).hex())
        assert bridge.read_line(1.0).startswith("DN 1000100 ")
        bridge.write("OK 1000100")
        assert bridge.read_line(2.0).startswith("DN ")  # the command, held by the bridge
        bridge.write("READY 1 sx1276 868100000 9 125000 4/5")  # ... which then resets
        wait_until(lambda: g.metric("cityedge_downlink_errors_total", ingress="serial",
                                    reason="bridge_reset") == 1, 5, "the reset noticed")
        wait_until(lambda: g.call(lambda: g.gw.store.command(cmd["id"]))["state"] == "queued",
                   5, "the command queued again")
