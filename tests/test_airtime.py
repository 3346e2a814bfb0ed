"""protocol/airtime.py on both runtimes: time on air against published calculator figures,
the EU868 data rates, payload limits and duty-cycle sub-bands, and tools/airtime as a
technician runs it."""
import json
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import airtime
from tools.mpybuild import ROOT

TOA = "protocol.airtime.time_on_air_ms"
# Published figures are given to the microsecond.
US = 0.0005

# (payload_len, sf, bw_khz, cr, preamble, explicit_header, crc, ldro) -> milliseconds.
# ldro None means "chosen from the symbol time", as every source below does.
VECTORS = [
    # avbentem/airtime-calculator src/lora/Airtime.test.ts (TTN's airtime calculator, checked
    # against the TTN airtime spreadsheet): explicit header, CRC, preamble 8.
    ((14, 7, 125, 1, 8, True, True, None), 46.336),
    ((16, 7, 125, 1, 8, True, True, None), 51.456),
    ((25, 7, 125, 1, 8, True, True, None), 61.696),
    ((25, 7, 125, 4, 8, True, True, None), 86.272),
    ((25, 8, 125, 1, 8, True, True, None), 113.152),
    ((25, 11, 125, 1, 8, True, True, None), 823.296),
    ((25, 7, 250, 1, 8, True, True, None), 30.848),
    ((25, 7, 250, 4, 8, True, True, None), 43.136),
    # TTN LoRaWAN airtime spreadsheet (docs.google.com/spreadsheets/d/1voGAtQAjC1qBmaVuP1Ap
    # NKs1ekgUjavHuVQIXyYSvNc): 13-byte packet at SF9, low data rate optimisation off.
    ((13, 9, 125, 1, 8, True, True, None), 164.864),
    # Airtime spreadsheet "Formulas taken from AN1200.13" (docs.google.com/spreadsheets/d/
    # 1eL1nHxMidIcIdDE_l-DoY3kmE2e8b0YpOBW64WnYxj8): 24-byte application payload + 13-byte
    # LoRaWAN header, every SF at 125 kHz.
    ((37, 7, 125, 1, 8, True, True, None), 82.176),
    ((37, 9, 125, 1, 8, True, True, None), 267.264),
    ((37, 10, 125, 1, 8, True, True, None), 493.568),
    ((37, 12, 125, 1, 8, True, True, None), 1974.272),
    # rfwireless-world.com LoRaWAN airtime calculator, examples 1 and 2 (10-byte payload).
    ((10, 7, 125, 1, 8, True, True, None), 41.216),
    ((10, 11, 125, 1, 8, True, True, None), 577.536),
    # d-central.tech LoRa airtime calculator reference check (Meshtastic LongFast: SF11 at
    # 250 kHz, 16-symbol preamble, 16 bytes).
    ((16, 11, 250, 1, 16, True, True, None), 354.304),
    # Semtech SX1261 LoRa Calculator, as recorded in micropython-lib
    # micropython/lora/tests/test_time_on_air.py: SF12/500 kHz/4/5 and SF8/125 kHz/4/6,
    # including implicit header and CRC off.
    ((1, 12, 500, 1, 8, True, True, None), 206.848),
    ((64, 12, 500, 1, 12, True, True, None), 649.216),
    ((1, 12, 500, 1, 8, True, False, None), 165.888),
    ((192, 12, 500, 1, 8, True, True, None), 1476.608),
    ((16, 12, 500, 1, 12, False, False, None), 280.576),
    ((1, 8, 125, 2, 8, True, True, None), 53.760),
    ((3, 8, 125, 2, 8, True, True, None), 66.048),
    ((3, 8, 125, 2, 8, True, False, None), 53.760),
    ((253, 8, 125, 2, 8, True, True, None), 827.904),
    ((5, 8, 125, 2, 12, False, True, None), 61.952),
    ((10, 8, 125, 2, 12, False, True, None), 86.528),
    ((253, 8, 125, 2, 12, False, True, None), 823.808),
    # avbentem Airtime.test.ts again, with low data rate optimisation passed explicitly.
    ((14, 11, 125, 1, 8, True, True, True), 659.456),
]


@pytest.mark.parametrize("args, ms", VECTORS)
def test_published_time_on_air_figures_are_matched(runtime, args, ms):
    assert runtime.call(TOA, *args) == pytest.approx(ms, abs=US)


def test_sf12_25_byte_frame_takes_one_1482ms_step(runtime):
    # avbentem/airtime-calculator shows 1,482.8 ms for SF12BW125 (Results.test.tsx, a 23-byte
    # packet, which fills the same five 40-bit blocks as 25 bytes). By the datasheet formula:
    # ceil((200 - 48 + 28 + 16) / 40) = 5 blocks, 8 + 5 * 5 = 33 payload symbols, plus 12.25
    # preamble symbols, each 4096 / 125 = 32.768 ms.
    assert runtime.call(TOA, 25, 12) == pytest.approx(1482.752, abs=US)
    assert runtime.call(TOA, 23, 12) == runtime.call(TOA, 25, 12)


def test_defaults_are_lorawan_framing():
    # CR 4/5, preamble 8, explicit header, CRC, automatic low data rate optimisation.
    assert airtime.time_on_air_ms(25, 9) == airtime.time_on_air_ms(25, 9, 125, 1, 8, True, True,
                                                                    None)


# Forced low data rate optimisation, worked by hand from SX1276 datasheet 4.1.1.7 (no
# published calculator figure found for a setting that differs from the automatic one).
def test_forcing_ldro_on_at_sf7_spends_more_symbols(runtime):
    # ceil(216 / (4 * (7 - 2))) = 11 blocks -> 8 + 55 = 63 symbols; (63 + 12.25) * 1.024 ms
    assert runtime.call(TOA, 25, 7, 125, 1, 8, True, True, True) == pytest.approx(77.056, abs=US)
    assert runtime.call(TOA, 25, 7, 125, 1, 8, True, True, None) == pytest.approx(61.696, abs=US)


def test_forcing_ldro_off_at_sf12_saves_symbols(runtime):
    # 51 bytes: 404 bits; on: ceil(404/40) = 11 blocks -> 63 symbols -> 75.25 * 32.768 ms;
    # off: ceil(404/48) = 9 blocks -> 53 symbols -> 65.25 * 32.768 ms.
    assert runtime.call(TOA, 51, 12) == pytest.approx(2465.792, abs=US)
    assert runtime.call(TOA, 51, 12, 125, 1, 8, True, True, False) == pytest.approx(2138.112,
                                                                                    abs=US)


@pytest.mark.parametrize("sf, bw, on", [
    (10, 125, False), (11, 125, True), (12, 125, True),  # the LoRaWAN rule: SF11/12 at 125
    (11, 250, False), (12, 250, True), (12, 500, False), (9, 62.5, False), (10, 62.5, True),
])
def test_ldro_switches_on_at_16ms_symbols(runtime, sf, bw, on):
    assert runtime.call("protocol.airtime.low_data_rate_optimize", sf, bw) is on


@pytest.mark.parametrize("sf, bw, ms", [(7, 125, 1.024), (9, 125, 4.096), (12, 125, 32.768),
                                        (7, 250, 0.512), (12, 500, 8.192)])
def test_symbol_time_is_two_to_the_sf_over_bandwidth(runtime, sf, bw, ms):
    # SF9/125 kHz: 4.096 ms as in the TTN spreadsheet; SF12/500 kHz: 8.192 ms as in the
    # Semtech calculator figures above.
    assert runtime.call("protocol.airtime.symbol_time_ms", sf, bw) == pytest.approx(ms, abs=1e-9)


@pytest.mark.parametrize("spelling", [7.8, 7.81, 7.8125])
def test_narrow_bandwidths_use_the_exact_crystal_fraction(runtime, spelling):
    # "7.8 kHz" is 125/16 kHz. The Semtech calculator rounds it to 7.81 kHz, so its symbol time
    # (524.456 ms) is 0.03% longer than the modem's.
    assert runtime.call("protocol.airtime.symbol_time_ms", 12, spelling) == 524.288


@pytest.mark.parametrize("args, symbols", [
    # Semtech SX1261 calculator symbol counts (micropython-lib test_time_on_air.py, shown there
    # without the 8 fixed symbols, added back here): low data rate optimisation on.
    ((253, 12, 7.81, 4, 128, True, True, None), 548.25),
    ((16, 11, 10.42, 3, 25, True, True, None), 65.25),
    ((16, 11, 10.42, 3, 25, False, False, None), 58.25),
])
def test_narrow_bandwidth_packets_count_the_calculators_symbols(runtime, args, symbols):
    total = runtime.call(TOA, *args)
    tsym = runtime.call("protocol.airtime.symbol_time_ms", args[1], args[2])
    assert total / tsym == pytest.approx(symbols, abs=1e-9)


def test_an_empty_implicit_packet_has_only_the_fixed_symbols(runtime):
    # SF12, implicit header, no CRC, 0 bytes: the max(..., 0) floor leaves 8 payload symbols.
    assert runtime.call(TOA, 0, 12, 125, 1, 8, False, False, None) == pytest.approx(
        (8 + 4.25 + 8) * 32.768, abs=1e-9)


# --- EU868 ----------------------------------------------------------------------------------

EU868 = [(0, 12, 125, 64), (1, 11, 125, 64), (2, 10, 125, 64), (3, 9, 125, 128),
         (4, 8, 125, 255), (5, 7, 125, 255), (6, 7, 250, 255)]


@pytest.mark.parametrize("dr, sf, bw, phy_max", EU868)
def test_eu868_data_rates_and_phy_payload_limits(runtime, dr, sf, bw, phy_max):
    # RP002 EU863-870: M = 59/59/59/123/250/250/250 (not repeater compatible), + MHDR + MIC
    assert runtime.call("protocol.airtime.eu868_dr", sf, bw) == dr
    assert runtime.call("protocol.airtime.eu868_max_payload", dr) == phy_max


def test_eu868_limits_are_lorawan_application_payload_plus_13_bytes():
    # N (application payload, empty FOpts) is 51/51/51/115/242/242/242: 8 bytes of FHDR and
    # FPort and 5 of MHDR and MIC around it.
    assert [airtime.eu868_max_payload(dr) - 13 for dr in range(7)] == [51, 51, 51, 115, 242,
                                                                       242, 242]


def test_a_longest_eu868_sf12_frame_still_fits_a_one_percent_budget():
    toa = airtime.time_on_air_ms(airtime.eu868_max_payload(0), 12)
    assert toa < 36000  # 1% of an hour


def test_eu868_default_channels_share_the_one_percent_sub_band(runtime):
    assert airtime.EU868_DEFAULT_CHANNELS_HZ == (868100000, 868300000, 868500000)
    for f in airtime.EU868_DEFAULT_CHANNELS_HZ:
        assert list(runtime.call("protocol.airtime.eu868_sub_band", f)) == [
            "868.0-868.6", 868000000, 868600000, 0.01]


@pytest.mark.parametrize("freq_hz, duty", [
    (863100000, 0.001), (864900000, 0.001),  # 863-865 MHz: 0.1%, not the old 1%
    (865000000, 0.01), (867900000, 0.01),
    (868000000, 0.01), (868500000, 0.01),
    (868800000, 0.001), (869100000, 0.001),
    (869525000, 0.1),  # LoRaWAN's RX2 channel
    (869850000, 0.01),
])
def test_sub_band_duty_cycles(runtime, freq_hz, duty):
    name, low, high, dc = runtime.call("protocol.airtime.eu868_sub_band", freq_hz)
    assert low <= freq_hz < high and dc == duty


@pytest.mark.parametrize("freq_hz", [862900000, 868650000, 869300000, 869675000, 870000000,
                                     915000000])
def test_alarm_bands_and_frequencies_outside_eu868_have_no_sub_band(runtime, freq_hz):
    with value_error(runtime, "freq_hz"):
        runtime.call("protocol.airtime.eu868_sub_band", freq_hz)


@pytest.mark.parametrize("duty, factor", [(0.01, 99), (0.001, 999), (0.1, 9), (1, 0)])
def test_off_time_is_airtime_times_inverse_duty_cycle_minus_one(runtime, duty, factor):
    assert runtime.call("protocol.airtime.off_time_ms", 1482.752, duty) == pytest.approx(
        1482.752 * factor, rel=1e-12)


def test_one_percent_means_ninety_nine_times_the_airtime_of_silence(runtime):
    assert runtime.call("protocol.airtime.off_time_ms", 100.0, 0.01) == 9900.0


# --- invalid arguments ----------------------------------------------------------------------

def value_error(runtime, name):
    """A ValueError naming the argument; MicroPython's arrives as RuntimeError naming it."""
    if runtime.name == "cpython":
        return pytest.raises(ValueError, match=name)
    return pytest.raises(RuntimeError, match="ValueError: .*" + name)


@pytest.mark.parametrize("path, args, name", [
    (TOA, (256, 7), "payload_len"),
    (TOA, (-1, 7), "payload_len"),
    (TOA, (25, 5), "sf"),
    (TOA, (25, 13), "sf"),
    (TOA, (25, 7, 100), "bw_khz"),
    (TOA, (25, 7, 125, 0), "cr"),
    (TOA, (25, 7, 125, 5), "cr"),
    (TOA, (25, 7, 125, 1, -1), "preamble"),
    (TOA, (25.0, 7), "payload_len"),
    ("protocol.airtime.symbol_time_ms", (7, 300), "bw_khz"),
    ("protocol.airtime.eu868_max_payload", (7,), "dr"),
    ("protocol.airtime.eu868_max_payload", (-1,), "dr"),
    ("protocol.airtime.eu868_dr", (7, 500), "bw_khz"),
    ("protocol.airtime.eu868_dr", (6, 125), "sf"),
    ("protocol.airtime.off_time_ms", (100.0, 0), "duty_cycle"),
    ("protocol.airtime.off_time_ms", (100.0, 1.5), "duty_cycle"),
    ("protocol.airtime.off_time_ms", (-1.0, 0.01), "airtime_ms"),
])
def test_invalid_arguments_raise_value_error_naming_the_argument(runtime, path, args, name):
    with value_error(runtime, name):
        runtime.call(path, *args)


# --- properties -----------------------------------------------------------------------------

settings_ = st.tuples(st.sampled_from([7.8, 10.4, 15.6, 20.8, 31.25, 41.7, 62.5, 125, 250, 500]),
                      st.integers(1, 4), st.integers(0, 64), st.booleans(), st.booleans(),
                      st.sampled_from([None, True, False]))


@settings(max_examples=500)
@given(payload=st.integers(0, 254), sf=st.integers(6, 12), s=settings_)
def test_airtime_never_decreases_with_payload_length(payload, sf, s):
    bw, cr, preamble, explicit, crc, ldro = s
    assert airtime.time_on_air_ms(payload + 1, sf, bw, cr, preamble, explicit, crc, ldro) >= \
        airtime.time_on_air_ms(payload, sf, bw, cr, preamble, explicit, crc, ldro)


@settings(max_examples=500)
@given(payload=st.integers(0, 255), sf=st.integers(6, 11), s=settings_)
def test_airtime_never_decreases_with_spreading_factor(payload, sf, s):
    bw, cr, preamble, explicit, crc, ldro = s
    assert airtime.time_on_air_ms(payload, sf + 1, bw, cr, preamble, explicit, crc, ldro) >= \
        airtime.time_on_air_ms(payload, sf, bw, cr, preamble, explicit, crc, ldro)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(payload=st.integers(0, 255), sf=st.integers(6, 12), s=settings_)
def test_both_runtimes_compute_the_same_airtime(micropython, payload, sf, s):
    args = (payload, sf) + s
    assert micropython.call(TOA, *args) == airtime.time_on_air_ms(*args)


# --- tools/airtime --------------------------------------------------------------------------

def airtime_tool(*args):
    # The bash wrapper, run from outside the repository as a technician would.
    return subprocess.run([str(ROOT / "tools" / "airtime"), *args], capture_output=True,
                          text=True, timeout=60, cwd="/")


def test_tool_prints_airtime_dr_fit_sub_band_and_off_time_as_json():
    result = airtime_tool("--sf", "12", "--bw", "125", "--cr", "4/5", "--payload", "25",
                          "--freq", "868.1", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["airtime_ms"] == 1482.752 and out["symbol_time_ms"] == 32.768
    assert out["ldro"] is True and out["eu868_dr"] == 0 and out["eu868_max_payload"] == 64
    assert out["fits_eu868"] is True
    assert out["sub_band_mhz"] == "868.0-868.6" and out["duty_cycle"] == 0.01
    assert out["off_time_ms"] == pytest.approx(1482.752 * 99, abs=0.001)
    assert out["off_time_s"] == pytest.approx(146.792, abs=0.001)


def test_tool_flags_a_payload_too_long_for_its_data_rate():
    out = json.loads(airtime_tool("--sf", "9", "--payload", "129", "--json").stdout)
    assert out["eu868_dr"] == 3 and out["eu868_max_payload"] == 128 and out["fits_eu868"] is False


def test_tool_options_reach_the_formula():
    out = json.loads(airtime_tool("--sf", "12", "--bw", "500", "--payload", "16", "--preamble",
                                  "12", "--implicit", "--no-crc", "--freq", "869.525",
                                  "--json").stdout)
    assert out["airtime_ms"] == 280.576  # Semtech calculator figure above
    assert out["eu868_dr"] is None and out["fits_eu868"] is None and out["duty_cycle"] == 0.1


def test_tool_table_shows_the_airtime_with_two_decimals():
    result = airtime_tool("--sf", "9", "--bw", "125", "--cr", "4/5", "--payload", "25")
    assert result.returncode == 0, result.stderr
    assert "205.82 ms" in result.stdout and "DR3" in result.stdout


@pytest.mark.parametrize("args, message", [
    (("--sf", "13", "--payload", "25"), "sf must be an integer 6..12, got 13"),
    (("--sf", "7", "--cr", "4/9", "--payload", "25"), "--cr must be 4/5, 4/6, 4/7 or 4/8"),
    (("--sf", "7", "--bw", "100", "--payload", "25"), "bw_khz must be one of"),
    (("--sf", "7", "--payload", "256"), "payload_len must be an integer 0..255"),
    (("--sf", "7", "--payload", "25", "--freq", "915"), "--freq 915.0 MHz is in no EU868"),
])
def test_tool_rejects_bad_arguments_with_one_line_and_status_2(args, message):
    result = airtime_tool(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert result.stderr.startswith("tools/airtime: error: ")
