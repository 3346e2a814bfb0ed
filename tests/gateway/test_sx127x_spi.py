# The SX127x-on-SPI ingress. No Raspberry Pi here: the adapter's byte translation is
# checked against a recording stand-in for spidev (the only stand-in in these tests), and
# the ingress runs end to end with the firmware's unchanged driver against the virtual
# board's SX127x model (written from the datasheet), reached through the same adapter.
import sys
import time

import pytest

from protocol import schema

from gateway import config as config_mod
from gateway.app import build_ingresses
from gateway.ingress import spi_adapter
from gateway.ingress.sx127x_spi import Sx127xSpiIngress, full_tmst
from hil_tests.virtual.models.sx127x import SX127x as ChipModel
from tests.gateway.broker import wait_until
from tests.gateway.harness import GatewayThread, make_config
from tests.gateway.radio import open_down, uplink


class RecordingSpiDev:
    """Records what spidev.SpiDev.xfer2 is given and answers with set bytes."""

    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def xfer2(self, values):
        self.calls.append(values)
        return list(self.answer[:len(values)])


def test_spi_adapter_passes_each_transaction_as_one_xfer2_and_fills_the_read_buffer():
    dev = RecordingSpiDev(bytes((0x00, 0x12, 0x34)))
    bus = spi_adapter.SpiBus(dev)
    buf = bytearray((0x42, 0x00))
    bus.write_readinto(buf, buf)  # the driver reads a register in place
    assert dev.calls == [[0x42, 0x00]] and buf == bytearray((0x00, 0x12))
    mv = memoryview(bytearray((0x80, 1, 2)))  # a FIFO burst from a memoryview slice
    bus.write_readinto(mv, mv)
    assert dev.calls[1] == [0x80, 1, 2] and bytes(mv) == bytes((0x00, 0x12, 0x34))
    with pytest.raises(ValueError):
        bus.write_readinto(bytearray(2), bytearray(3))
    cs = spi_adapter.KernelChipSelect()
    cs.init(cs.OUT, value=1)
    assert cs(0) is None and cs() == 1  # the kernel frames each transfer itself


def test_the_firmware_driver_loads_on_cpython_with_micropython_time():
    before = {name: sys.modules.get(name) for name in ("net", "net.radio")}
    driver = spi_adapter.load_driver()
    assert driver.SX127x.chip == "sx1276" and driver.PRIVATE_SYNC_WORD == 0x12
    # the waits come from net/radio.py, which runs on the same clock
    assert isinstance(driver.SX127x.sending.__globals__["time"], spi_adapter.MicroTime)
    assert {name: sys.modules.get(name) for name in ("net", "net.radio")} == before
    a = driver.time.ticks_us()
    driver.time.sleep_ms(2)
    assert driver.time.ticks_diff(driver.time.ticks_us(), a) >= 2000


def test_a_32_bit_tmst_is_placed_next_to_the_radio_clock():
    now = (5 << 32) + 100
    assert full_tmst(200, now) == now + 100
    assert full_tmst(0xFFFFFF00, now) == now - 356  # just before the wrap: in the past
    assert full_tmst((now + 2000000) & 0xFFFFFFFF, now) == now + 2000000


def test_missing_spidev_is_a_clear_error(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_spidev(name, *args, **kw):
        if name == "spidev":
            raise ImportError("No module named 'spidev'")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_spidev)
    with pytest.raises(spi_adapter.MissingDependency) as e:
        spi_adapter.open_spi(0, 0, 1000000)
    assert "'spidev'" in str(e.value) and "pip install spidev" in str(e.value)


def _now_us():
    return time.monotonic_ns() // 1000


class ModelSpiDev:
    """spidev's xfer2 on the chip model: NSS low, the bytes, NSS high, as the kernel's
    chip select does, at the clock the driver's ticks_us reads."""

    def __init__(self, chip):
        self.chip = chip

    def xfer2(self, values):
        vt = _now_us()
        self.chip.cs_pin.write(0, vt)
        out = self.chip.transfer(bytes(values), vt)
        self.chip.cs_pin.write(1, vt)
        return list(out)


class ModelPin:
    """machine.Pin on one of the chip model's pins (reset, DIO0)."""

    IN, OUT, IRQ_RISING = 0, 1, 1

    def __init__(self, pin):
        self.pin = pin

    def init(self, mode, value=None):
        if value is not None:
            self.pin.write(value, _now_us())

    def __call__(self, value=None):
        return self.value(value)

    def value(self, value=None):
        if value is None:
            return self.pin.read(_now_us())
        self.pin.write(value, _now_us())
        return None

    def irq(self, handler=None, trigger=None):
        pass


def spi_gateway(tmp_path, inv, chip):
    """A gateway whose SPI ingress drives the chip model with the firmware's driver: the
    GatewayThread and the ingress."""
    spi = config_mod.SpiIngressConfig(enabled=True, sf=7, frequency_hz=868300000)
    driver = spi_adapter.load_driver()
    radio = driver.SX127x(spi_adapter.SpiBus(ModelSpiDev(chip)),
                          spi_adapter.KernelChipSelect(), ModelPin(chip.reset_pin),
                          ModelPin(chip.dio0_pin), freq_hz=spi.frequency_hz, sf=spi.sf,
                          bw_hz=125000, cr=5, power_dbm=spi.tx_power_dbm)
    made = []

    def ingresses(config, sink, *, radio_sink, metrics, downlink_failed):
        out = build_ingresses(config, sink, radio_sink=radio_sink, metrics=metrics,
                              downlink_failed=downlink_failed)
        made.append(Sx127xSpiIngress(spi, sink=radio_sink, metrics=metrics,
                                     downlink_failed=downlink_failed, driver=driver,
                                     radio=radio, poll_s=0.002))
        return out + made

    cfg = make_config(tmp_path, inv, spi=config_mod.replace(spi, enabled=False))
    return GatewayThread(cfg, ingresses=ingresses), made


def test_spi_radio_uplink_is_stored_and_the_receipt_is_sent_in_the_receive_window(tmp_path,
                                                                                  fleet):
    inv, devices = fleet
    dev = devices[0]
    chip = ChipModel()
    g, _ = spi_gateway(tmp_path, inv, chip)
    with g:
        data = uplink(dev, 0)
        frame = g.call(lambda: chip.inject(data, rssi=-101.0, snr=-3.25, start=_now_us()))
        wait_until(lambda: len(chip.sent) == 1, 5, "the receipt on air")
        down = chip.sent[0]
        # RX1: one second after the uplink ended, on its channel and data rate, I/Q inverted;
        # the node listens from 20 ms early and waits 50 ms for a preamble (its defaults
        # rx_margin_ms and rx_window_ms).
        assert -20000 <= down.start - (frame.end + 1000000) <= 40000, down.start - frame.end
        assert down.iq_inverted and down.sf == 7
        assert abs(down.freq_hz - 868300000) < 62  # the synthesizer's 61 Hz step
        assert open_down(dev, down.payload) == (schema.RECEIPT, {"fcnt": 0, "commands": 0})
        record = g.call(lambda: g.gw.store.device_records(dev.id))[0]
        assert record["source"] == "spi" and record["radio"]["receiver"] == "spi:0.0"
        assert record["radio"]["snr"] == -3.25 and record["radio"]["sf"] == 7
        # Back to listening with normal I/Q once the receipt is out (a radio does not hear
        # while it sends): the next uplink is heard too.
        time.sleep(max(0.0, (down.end - _now_us()) / 1e6) + 0.05)
        g.call(lambda: chip.inject(uplink(dev, 1), start=_now_us()))
        wait_until(lambda: g.metric("cityedge_frames_accepted_total", ingress="spi") == 2, 5,
                   "the second uplink")


def test_with_rx1s_sub_band_spent_the_receipt_goes_in_rx2_and_the_radio_listens_again(
        tmp_path, fleet):
    inv, devices = fleet
    dev = devices[0]
    chip = ChipModel()
    g, made = spi_gateway(tmp_path, inv, chip)
    with g:
        ingress = made[0]
        # This hour's 36 s of 868.0-868.6 MHz already sent.
        assert g.call(lambda: ingress.budget.take(868300000, 36.0,
                                                  ingress.clock.ticks_us() / 1e6))
        frame = g.call(lambda: chip.inject(uplink(dev, 0), start=_now_us(),
                                           freq_hz=868300000))
        wait_until(lambda: len(chip.sent) == 1, 5, "the receipt on air")
        down = chip.sent[0]
        # RX2: a second after RX1, on 869.525 MHz (10 % sub-band), same data rate.
        assert -20000 <= down.start - (frame.end + 2000000) <= 40000, down.start - frame.end
        assert abs(down.freq_hz - 869525000) < 62 and down.sf == 7 and down.iq_inverted
        assert open_down(dev, down.payload) == (schema.RECEIPT, {"fcnt": 0, "commands": 0})
        # Then the radio is back on the uplink channel.
        time.sleep(max(0.0, (down.end - _now_us()) / 1e6) + 0.05)
        g.call(lambda: chip.inject(uplink(dev, 1), start=_now_us(), freq_hz=868300000))
        wait_until(lambda: g.metric("cityedge_frames_accepted_total", ingress="spi") == 2, 5,
                   "the second uplink, on 868.3 MHz")
        assert g.metric("cityedge_downlink_errors_total", ingress="spi",
                        reason="duty_cycle") == 0


def test_an_sx1262_hat_hears_uplinks_and_sends_the_receipt_in_the_receive_window(tmp_path,
                                                                                 fleet):
    """`chip = "sx126x"`: the firmware's SX1262 driver, through the same adapter, against
    the SX1262 model."""
    from hil_tests.virtual.models.sx126x import SX126x as Sx126xModel
    inv, devices = fleet
    dev = devices[0]
    chip = Sx126xModel(busy=20, dio1=16, reset=18)
    spi = config_mod.SpiIngressConfig(enabled=True, sf=7, frequency_hz=868300000,
                                      chip="sx126x", busy_pin=20, dio1_pin=16, reset_pin=18)
    driver = spi_adapter.load_driver(chip="sx126x")
    radio = driver.SX126x(spi_adapter.SpiBus(ModelSpiDev(chip)),
                          spi_adapter.KernelChipSelect(), ModelPin(chip.reset_pin),
                          ModelPin(chip.busy_pin), ModelPin(chip.dio1_pin),
                          freq_hz=spi.frequency_hz, sf=spi.sf, bw_hz=125000, cr=5,
                          power_dbm=spi.tx_power_dbm, tcxo_mv=spi.tcxo_mv)
    made = []

    def ingresses(config, sink, *, radio_sink, metrics, downlink_failed):
        made.append(Sx127xSpiIngress(spi, sink=radio_sink, metrics=metrics,
                                     downlink_failed=downlink_failed, driver=driver,
                                     radio=radio, poll_s=0.002))
        return build_ingresses(config, sink, radio_sink=radio_sink, metrics=metrics,
                               downlink_failed=downlink_failed) + made

    cfg = make_config(tmp_path, inv, spi=config_mod.replace(spi, enabled=False))
    with GatewayThread(cfg, ingresses=ingresses) as g:
        frame = g.call(lambda: chip.inject(uplink(dev, 0), rssi=-101.0, snr=-3.25,
                                           start=_now_us()))
        wait_until(lambda: len(chip.sent) == 1, 5, "the receipt on air")
        down = chip.sent[0]
        assert -20000 <= down.start - (frame.end + 1000000) <= 40000, down.start - frame.end
        assert down.iq_inverted and down.sf == 7 and abs(down.freq_hz - 868300000) < 2
        assert open_down(dev, down.payload) == (schema.RECEIPT, {"fcnt": 0, "commands": 0})
        record = g.call(lambda: g.gw.store.device_records(dev.id))[0]
        assert record["radio"]["snr"] == -3.25
        time.sleep(max(0.0, (down.end - _now_us()) / 1e6) + 0.05)
        g.call(lambda: chip.inject(uplink(dev, 1), start=_now_us()))
        wait_until(lambda: g.metric("cityedge_frames_accepted_total", ingress="spi") == 2, 5,
                   "the second uplink")
