"""The LoRa link end to end on virtual boards: a node (firmware/net/lora.py over the SX127x
driver) sends through the simulated air to a second board running the firmware in bridge mode
(firmware/node/bridge.py); the test plays the gateway on the bridge's serial console with the
documented line protocol, and answers in the node's receive window. Also: the duty cycle
across deep sleep, and the fallback from LoRa to Wi-Fi."""
import json
import shutil
import threading
import time

import pytest
from hil_tests.virtual.air import Air, Transmitter
from protocol import schema
from hil_tests.virtual.bridge_host import BridgeHost
from hil_tests.virtual.board import VirtualBoard
from hil_tests.virtual.kits import kit, node_config
from hil_tests.virtual.models.sx127x import SX127x
from tests.firmware.conftest import ADDR, KEY

CHANNEL = 868100000
HEAP = "96K"
RX_DELAY_MS = 2000
# The radio's pins on these boards: clear of the fill kit's (5, 18, 21, 22, battery on 35).
PINS = {"cs": 15, "dio0": 26, "reset": 14, "sck": 12, "mosi": 13, "miso": 25}


def lora_section(**changes):
    # rx_window_ms: the node's and the bridge's boards keep their own virtual clocks, and the
    # node's clock runs ahead (it sleeps to its window in one step, the bridge polls in 1 ms
    # steps). The air holds a node's receiver back only for packet-forwarder gateways, so
    # here the window waits longer for the downlink's header than a real node needs to.
    # rx_delay_ms: the bridge's clock may run a few times faster than real time (it sleeps
    # between polls), so the host gets 2 s of it to answer an uplink, not 1 s.
    section = dict(PINS, sf=7, channels=[CHANNEL], rx_window_ms=3000, rx_delay_ms=RX_DELAY_MS)
    section.update(changes)
    return section


def radio_model(air=None, name=None, position=(0.0, 0.0)):
    return SX127x(bus="spi1", cs=PINS["cs"], dio0=PINS["dio0"], reset=PINS["reset"], air=air,
                  name=name, position=position)


def lora_node(make_board, receiver, radio, transports=("lora",), interval_s=600, heap=HEAP,
              config=None, **lora):
    """A fill node with this radio; `config`: more changes to its config.json, `lora` to
    its lora section."""
    cfg = node_config("fill", addr=ADDR, gateway_port=receiver.port, interval_s=interval_s,
                      transports=list(transports), lora=lora_section(**lora),
                      **(config or {}))
    return make_board(config=cfg, models=[*kit("fill").models(), radio, *radio.pins()],
                      heap=heap)


@pytest.fixture
def bridge(request, tmp_path, firmware_image):
    """A board in bridge mode on the air, 200 m from the node, and the host on its port
    (answering in RX2 on the channel given as the fixture's parameter, if any)."""
    air = Air()
    flash = tmp_path / "bridge" / "flash"
    shutil.copytree(firmware_image, flash)
    (flash / "bridge.json").write_text(json.dumps({"lora": lora_section()}))
    radio = radio_model(air, "bridge", (200.0, 0.0))
    board = VirtualBoard(flash, name="bridge", log_dir=tmp_path, console="pty",
                         models=[radio, *radio.pins()])
    board.start()
    board.expect(r"^READY 1 sx1276 868100000 7 125000 4/5$", timeout=30)
    host = BridgeHost(board, ADDR, KEY, rx_delay_ms=RX_DELAY_MS,
                      rx2_freq_hz=getattr(request, "param", None))
    yield air, host
    host.close()
    air.leave(radio)
    board.close()


def test_a_node_uplink_is_relayed_and_its_receipt_arrives_in_the_receive_window(
        make_board, receiver, bridge):
    air, host = bridge
    radio = radio_model(air, "node")
    # max_wait_ms 0: nothing may wait for the duty cycle. Just after power-on nothing goes
    # out (the node cannot know what it sent before: it counts as if it had just sent);
    # on the next wake the reading goes, and the status frame that follows it waits.
    # interval_s 10: the bridge's clock keeps close to real time, the air waits for it.
    node = lora_node(make_board, receiver, radio, max_wait_ms=0, interval_s=10)
    first, second = node.run(runs=2, timeout=60)
    assert radio.sent[0].start > first.vt_start + 5e6  # after the power-on off time
    node.expect(r"lora: lora: duty cycle, next channel free in 6 s")  # SF7: 5.6 s
    assert [kind for _, kind, _ in host.accepted] == ["fill"]
    up = radio.sent[0]
    assert (up.freq_hz // 1000, up.sf, up.sync_word, up.iq_inverted) == (868099, 7, 0x12, False)
    # The receipt went out rx_delay after the uplink ended (as the bridge stamped its end:
    # when it next polled its radio, up to some 100 ms late on this host), I/Q inverted,
    # and the node heard it.
    down = [f for f in air.frames if f.iq_inverted]
    assert len(down) == 1 and 0 <= down[0].start - up.end - RX_DELAY_MS * 1000 < 150000
    assert [e["fate"] for e in air.log if e["frame"] == down[0].id] == ["delivered"]
    assert host.errors == []


def test_waiting_for_the_duty_cycle_is_not_reported_as_a_link_fault(make_board, receiver,
                                                                   bridge):
    air, host = bridge
    radio = radio_model(air, "node")
    # One frame per wake gets through (the next waits for the duty cycle); a status frame
    # every cycle reports the faults of the cycle before it.
    node = lora_node(make_board, receiver, radio, max_wait_ms=0, interval_s=10,
                     config={"status_every": 1})
    node.run(runs=5, timeout=60)
    statuses = [m for _, kind, m in host.accepted if kind == "status"]
    assert len(statuses) == 2, host.accepted
    assert all(s["faults"] & schema.FAULT_LINK == 0 for s in statuses), statuses


def test_a_frame_too_long_for_lora_is_dropped_and_counted_not_left_blocking_the_queue(
        make_board, receiver, bridge):
    air, host = bridge
    radio = radio_model(air, "node")
    node = lora_node(make_board, receiver, radio, max_wait_ms=0, sf=12)
    # Left in the queue by an earlier life on Wi-Fi (its counters below 256, the flash
    # reservation this life starts at), longer than SF12's 64 bytes.
    (node.flash / "fcnt.res").write_text("256")
    (node.flash / "queue").mkdir(exist_ok=True)
    (node.flash / "queue" / "0000000200.f").write_bytes(bytes(100))
    node.run(timeout=120)
    node.expect(r"lora: lora: frame of 100 bytes is over 64 at SF12")
    # The frames after it were tried (here they wait for the power-on off time, 130 s).
    node.expect(r"lora: lora: duty cycle, next channel free in")
    node.expect(r"frame 200 dropped: too long for every link")
    assert not (node.flash / "queue" / "0000000200.f").exists()
    assert (node.flash / "queue" / "dropped").read_text() == "1"


def test_a_command_comes_down_after_the_receipt_and_is_acknowledged(make_board, receiver,
                                                                    bridge):
    air, host = bridge
    host.commands.append((7, "set_interval", 900))
    radio = radio_model(air, "node")
    # SF7: after each frame the sub-band closes for about 5 s; the node waits that out.
    node = lora_node(make_board, receiver, radio, max_wait_ms=10000)
    node.run(timeout=120)
    node.expect(r"command 7 set_interval 900 -> 0")
    node.expect(r"cycle done: .* 0 frame\(s\) queued")
    kinds = [kind for _, kind, _ in host.accepted]
    assert kinds[:2] == ["fill", "status"] and "ack" in kinds
    # The status frame's receipt carried the command again (no ack had come yet): the node
    # acknowledges it again without applying it twice.
    acks = [m for _, k, m in host.accepted if k == "ack"]
    assert acks and all(a == {"command_id": 7, "result": 0} for a in acks)
    assert host.errors == []
    ups = [f for f in air.frames if not f.iq_inverted]
    for before, after in zip(ups, ups[1:]):  # 1% of the sub-band, frame after frame
        assert after.start >= before.end + 99 * (before.end - before.start)


@pytest.mark.parametrize("bridge", [869525000], indirect=True)
def test_a_receipt_in_rx2_is_heard_and_a_command_follows_on_its_channel(make_board, receiver,
                                                                        bridge):
    air, host = bridge
    host.commands.append((9, "set_interval", 1200))
    radio = radio_model(air, "node")
    node = lora_node(make_board, receiver, radio, max_wait_ms=10000)
    node.run(timeout=120)
    node.expect(r"command 9 set_interval 1200 -> 0")
    up = radio.sent[0]
    down = [f for f in air.frames if f.iq_inverted]
    # The receipt: a second after RX1, on 869.525 MHz; the command rx_delay after its end,
    # on the same channel. The node heard both (nothing came in RX1 on 868.1 MHz).
    # (measured from the uplink's end as the bridge stamped it: see the first test)
    assert 0 <= down[0].start - up.end - RX_DELAY_MS * 1000 - 1000000 < 150000
    assert abs(down[1].start - down[0].end - RX_DELAY_MS * 1000) < 20000
    assert all(abs(f.freq_hz - 869525000) < 62 for f in down[:2])  # 61 Hz synthesizer step
    assert [e["fate"] for e in air.log if e["frame"] in (down[0].id, down[1].id)
            and e["receiver"] == "node"] == ["delivered", "delivered"]
    assert "ack" in [kind for _, kind, _ in host.accepted]
    assert host.errors == []


def test_a_board_the_air_holds_still_is_not_reset_by_its_watchdog(make_board, receiver):
    # A radio whose clock stays at 0 for 6 s of real time holds the horizon back: the
    # node's uplink waits for it longer than the node's 3 s watchdog. The chip is frozen
    # meanwhile, its watchdog too. The receive windows here (rx_delay_ms 2000, rx_window_ms
    # 3000) outlast the watchdog as well: the link feeds it while it listens.
    air = Air()
    slow = Transmitter("slow")
    air.join(slow)
    release = threading.Timer(6.0, setattr, (slow, "now", 10 ** 12))
    release.start()
    radio = radio_model(air, "node")
    node = lora_node(make_board, receiver, radio, max_wait_ms=10000, config={"wdt_ms": 3000})
    started = time.monotonic()
    run, = node.run(timeout=60)
    release.join()
    assert run.end == "deepsleep", run
    assert time.monotonic() - started > 4 and radio.sent and not air.waits


def test_the_duty_cycle_holds_across_deep_sleep(make_board, receiver):
    # No gateway answers: every frame stays queued and is tried again each cycle, as soon
    # as the sub-band allows. At SF9 a frame takes about 0.2 s, so the sub-band closes
    # for about 20 s: with a 10 s interval only every second cycle or so may send.
    radio = radio_model()
    node = lora_node(make_board, receiver, radio, interval_s=10, sf=9, max_wait_ms=0,
                     channels=[868100000, 868300000, 868500000])
    node.run(runs=8, timeout=60)
    sent = radio.sent
    assert 2 <= len(sent) <= 5
    for before, after in zip(sent, sent[1:]):
        assert after.start >= before.end + 99 * (before.end - before.start)


def test_a_node_without_a_radio_falls_back_to_wifi(make_board, receiver):
    radio = radio_model()
    radio.fault = "nack"
    # Both links' code at start does not fit the fill node's 96 KB cap on the virtual board
    # (it needs about 100 KB: firmware/README.md, "Heap"), so this node gets more.
    node = lora_node(make_board, receiver, radio, transports=("lora", "wifi"), heap="104K")
    node.run()
    node.expect(r"lora: lora: radio not available \(sx127x: RegVersion is 0x00")
    receiver.wait_for(lambda r: len(r.readings()) >= 2)
    assert {a[2] for a in receiver.readings()} == {"fill", "status"}
    node.expect(r"cycle done: .* 0 frame\(s\) queued")


def test_the_bridge_answers_the_host_as_documented(bridge):
    air, host = bridge
    board = host.board
    host.write("PING")
    now = int(board.expect(r"^PONG 1 (\d+)$").group(1))
    host.write("DN 5 868100000 7 125000 4/5 14 00")   # long past (or 71 minutes ahead)
    host.write("DN %d 868100000 7 125000 4/5 14 00" % (now + 60000000))
    host.write("HELLO")
    host.write("DN NOW 868100000 7 125000 4/5 21 00")
    board.expect(r"^ERR param power 21$")
    errors = [line.split()[1] for line in board.console if line.startswith("ERR ")]
    assert errors == ["too_late", "too_early", "syntax", "param"]
    host.write("DN NOW 868300000 7 125000 4/5 10 c0ffee")
    board.expect(r"^OK \d+$")
    down = [f for f in air.frames if f.iq_inverted]
    assert [(f.payload, f.freq_hz // 1000, f.power_dbm) for f in down] == \
        [(b"\xc0\xff\xee", 868299, 10)]
    # Back to listening on its own channel, with normal I/Q, after the downlink.
    host.write("PING")
    board.expect(r"^PONG 1 \d+$", start=len(board.console) - 1)
