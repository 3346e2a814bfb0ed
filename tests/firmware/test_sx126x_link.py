"""A node with an SX1262 (`"chip": "sx126x"`: firmware/net/sx126x.py against the datasheet
model, hil_tests/virtual/models/sx126x.py) on the same air as the SX1276 bridge of
test_lora_link.py: its uplinks are relayed, the receipt and a command come down in its
receive window; without the chip it falls back to Wi-Fi."""
from hil_tests.virtual.models.sx126x import SX126x
from tests.firmware.test_lora_link import (CHANNEL, RX_DELAY_MS, bridge,  # noqa: F401
                                           lora_node)

# The SX1262's pins on these boards: clear of the fill kit's and of the bridge's radio.
PINS = {"cs": 15, "busy": 27, "dio1": 26, "reset": 14, "sck": 12, "mosi": 13, "miso": 25}


def sx1262(air=None, name="node"):
    return SX126x(bus="spi1", cs=PINS["cs"], busy=PINS["busy"], dio1=PINS["dio1"],
                  reset=PINS["reset"], air=air, name=name, position=(0.0, 0.0))


def sx1262_node(make_board, receiver, radio, transports=("lora",), heap="104K", **lora):
    # The SX1262's driver takes more heap than the SX1276's: a cycle with a command needs
    # 100 KB, over the 96 KB cap (firmware/README.md, "Heap"); with a busy machine's
    # timing a little more.
    return lora_node(make_board, receiver, radio, transports=transports, heap=heap,
                     chip="sx126x", tcxo_mv=1800, **dict(PINS, **lora))


def test_an_sx1262_node_is_heard_by_an_sx1276_and_hears_its_receipt_and_command(
        make_board, receiver, bridge):
    air, host = bridge
    host.commands.append((5, "set_interval", 900))
    radio = sx1262(air)
    node = sx1262_node(make_board, receiver, radio, max_wait_ms=10000)
    run, = node.run(timeout=120)
    assert run.end == "deepsleep", run
    node.expect(r"command 5 set_interval 900 -> 0")
    node.expect(r"cycle done: .* 0 frame\(s\) queued")
    kinds = [kind for _, kind, _ in host.accepted]
    assert kinds[:2] == ["fill", "status"] and "ack" in kinds
    up = radio.sent[0]
    # 868.1 MHz to the synthesizer's step (32 MHz / 2^25, about 1 Hz)
    assert abs(up.freq_hz - CHANNEL) < 2
    assert (up.sf, up.bw_khz, up.cr, up.sync_word, up.iq_inverted) == (7, 125, 1, 0x12, False)
    down = [f for f in air.frames if f.iq_inverted]
    assert 0 <= down[0].start - up.end - RX_DELAY_MS * 1000 < 150000
    assert [e["fate"] for e in air.log if e["frame"] == down[0].id
            and e["receiver"] == "node"] == ["delivered"]
    assert host.errors == []


def test_a_node_whose_sx1262_does_not_answer_falls_back_to_wifi(make_board, receiver):
    radio = sx1262()
    radio.fault = "nack"
    node = sx1262_node(make_board, receiver, radio, transports=("lora", "wifi"))
    node.run()
    node.expect(r"lora: lora: radio not available \(sx126x: sync word register reads 0x0000")
    receiver.wait_for(lambda r: len(r.readings()) >= 2)
    node.expect(r"cycle done: .* 0 frame\(s\) queued")


def test_a_chip_the_firmware_does_not_know_is_a_link_fault_not_a_crash(make_board, receiver):
    radio = sx1262()
    node = lora_node(make_board, receiver, radio, transports=("lora", "wifi"), heap="104K",
                     chip="sx1280")
    run, = node.run()
    assert run.end == "deepsleep", run
    node.expect(r"lora: lora: radio not available \(lora.chip 'sx1280' is not sx127x or "
                r"sx126x\)")
    receiver.wait_for(lambda r: len(r.readings()) >= 2)  # Wi-Fi carried them
