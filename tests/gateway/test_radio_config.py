# [ingress.semtech], [ingress.serial], [ingress.spi] and ingress.dedup_window_s: read into
# the settings the radio ingresses get, and a bad value names the file, the line and the
# field, as every other section does.
import os

import pytest

from gateway import config as config_mod
from gateway.errors import ConfigError


def write(folder, text):
    path = os.path.join(str(folder), "gateway.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def test_radio_ingress_sections_are_read(tmp_path):
    c = config_mod.load(write(tmp_path, """
[ingress]
dedup_window_s = 0.3

[ingress.semtech]
enabled = true
host = "0.0.0.0"
port = 1700
gateway_euis = ["AA555A0000000101", "0102030405060708"]
rx_delay_s = 1
rx2_freq_hz = 0

[ingress.serial]
enabled = true
port = "/dev/ttyUSB0"
baud = 921600

[ingress.spi]
enabled = true
bus = 0
device = 1
reset_pin = 22
dio0_pin = 25
frequency_hz = 868500000
sf = 10
bw_khz = 125
cr = 1
tx_power_dbm = 17
"""))
    assert c.semtech.enabled and c.semtech.host == "0.0.0.0"
    assert c.semtech.gateway_euis == ("aa555a0000000101", "0102030405060708")
    assert c.serial.port == "/dev/ttyUSB0" and c.serial.baud == 921600
    assert (c.spi.device, c.spi.reset_pin, c.spi.dio0_pin, c.spi.sf) == (1, 22, 25, 10)
    assert c.dedup_window_s == 0.3
    assert (c.semtech.rx2_freq_hz, c.serial.rx2_freq_hz) == (0, 869525000)  # 0: RX1 only
    d = config_mod.defaults()
    assert not (d.semtech.enabled or d.serial.enabled or d.spi.enabled)
    assert (c.spi.chip, d.spi.chip) == ("sx127x", "sx127x")


def test_an_sx1262_hat_is_read_with_its_own_lines(tmp_path):
    c = config_mod.load(write(tmp_path, """
[ingress.spi]
enabled = true
chip = "sx126x"
reset_pin = 18
busy_pin = 20
dio1_pin = 16
tcxo_mv = 1800
dio2_rf_switch = false
"""))
    s = c.spi
    assert (s.chip, s.reset_pin, s.busy_pin, s.dio1_pin) == ("sx126x", 18, 20, 16)
    assert (s.tcxo_mv, s.dio2_rf_switch) == (1800, False)


@pytest.mark.parametrize("text, line, field, words", [
    ("[ingress.semtech]\nenabled = true\n", 1, "ingress.semtech",
     "missing required field 'gateway_euis'"),
    ("[ingress.semtech]\ngateway_euis = [\"0102\"]\n", 2, "ingress.semtech.gateway_euis",
     "16 hex digits"),
    ("[ingress.semtech]\nrx_delay_s = 0\n", 2, "ingress.semtech.rx_delay_s", "0.1..15"),
    ("[ingress.semtech]\nport = 70000\n", 2, "ingress.semtech.port", "a port"),
    ("[ingress.semtech]\nrx2_freq_hz = 869300000\n", 2, "ingress.semtech.rx2_freq_hz",
     "0 (no RX2) or Hz in an EU868 sub-band"),
    ("[ingress.spi]\nrx2_freq_hz = 869.525\n", 2, "ingress.spi.rx2_freq_hz", "got 869.525"),
    ("[ingress.serial]\nenabled = true\n", 1, "ingress.serial", "missing required field 'port'"),
    ("[ingress.serial]\nbaud = \"fast\"\n", 2, "ingress.serial.baud", "a baud rate"),
    ("[ingress.spi]\nsf = 6\n", 2, "ingress.spi.sf", "7..12"),
    ("[ingress.spi]\nbw_khz = 100\n", 2, "ingress.spi.bw_khz", "125"),
    ("[ingress.spi]\nreset_pin = 4\n", 2, "ingress.spi.reset_pin", "the same GPIO line"),
    ("[ingress.spi]\ncs_pin = 17\n", 2, "ingress.spi.cs_pin", "the same GPIO line"),
    ("[ingress.spi]\nfrequency = 868100000\n", 2, "ingress.spi.frequency", "unknown field"),
    ("[ingress]\ndedup_window_s = 2\n", 2, "ingress.dedup_window_s", "0..0.5"),
    ("[ingress.spi]\nchip = \"sx1280\"\n", 2, "ingress.spi.chip", "sx127x or sx126x"),
    ("[ingress.spi]\nenabled = true\nchip = \"sx126x\"\ndio1_pin = 16\n", 1,
     "ingress.spi.busy_pin", "needed with chip = \"sx126x\""),
    ("[ingress.spi]\nchip = \"sx126x\"\nbusy_pin = 16\ndio1_pin = 16\n", 4,
     "ingress.spi.dio1_pin", "the same GPIO line"),
    ("[ingress.spi]\ntcxo_mv = 1900\n", 2, "ingress.spi.tcxo_mv", "one of 0, 1600"),
])
def test_bad_radio_ingress_config_names_file_line_and_field(tmp_path, text, line, field, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        config_mod.load(path)
    assert (e.value.line, e.value.field) == (line, field), str(e.value)
    assert words in str(e.value)
