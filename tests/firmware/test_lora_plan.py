"""The LoRa link's pure parts on CPython and on MicroPython alike: the EU868 channel plan,
the duty-cycle budget of each sub-band, the receive window's timing (firmware/net/eu868.py)
and the serial bridge's line protocol (firmware/net/bridgeline.py)."""
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))
from net import bridgeline, eu868  # noqa: E402
from node import config  # noqa: E402

G1 = "868.0-868.6"


class Local:
    def call(self, path, *args):
        module, _, name = path.rpartition(".")
        modules = {"net.eu868": eu868, "net.bridgeline": bridgeline, "node.config": config}
        return getattr(modules[module], name)(*args)

    def method(self, obj, name, *args):
        return getattr(obj, name)(*args)


@pytest.fixture(params=["cpython", "micropython"])
def rt(request):
    if request.param == "cpython":
        return Local()
    return request.getfixturevalue("micropython_apps")


def budget_after(rt, spends):
    budget = rt.call("net.eu868.Budget")
    for freq, airtime, now in spends:
        rt.method(budget, "spend", freq, airtime, now)
    return budget


# ---------------------------------------------------------------- channel plan

def test_default_channels_lie_in_the_one_percent_sub_band(rt):
    for freq in (868100000, 868300000, 868500000):
        band = rt.call("net.eu868.check_channel", freq, 125000)
        assert band[0] == G1 and band[3] == 0.01


@pytest.mark.parametrize("freq, bw", [(868550000, 125000), (865050000, 125000),
                                      (868650000, 125000), (870100000, 125000)])
def test_a_channel_outside_or_across_a_sub_band_is_refused(rt, freq, bw):
    with pytest.raises((ValueError, RuntimeError), match="sub-band"):
        rt.call("net.eu868.check_channel", freq, bw)


def test_frames_longer_than_eu868_allows_at_the_data_rate_are_known(rt):
    # RP002 EU863-870: M = 123 at DR3 (SF9), 59 at DR0..2; plus MHDR and MIC.
    assert rt.call("net.eu868.max_payload", 9, 125000) == 128
    assert rt.call("net.eu868.max_payload", 12, 125000) == 64


def test_the_nodes_regional_figures_are_the_protocols():
    from protocol import airtime
    assert eu868.DEFAULT_CHANNELS_HZ == airtime.EU868_DEFAULT_CHANNELS_HZ
    assert eu868.SUB_BANDS == airtime.EU868_SUB_BANDS
    for dr, (sf, bw_khz) in enumerate(airtime.EU868_DATA_RATES):
        assert eu868.max_payload(sf, bw_khz * 1000) == airtime.eu868_max_payload(dr)
    for freq in range(863000000, 870000001, 50000):
        try:
            expected = airtime.eu868_sub_band(freq)
        except ValueError:
            with pytest.raises(ValueError):
                eu868.sub_band(freq)
        else:
            assert eu868.sub_band(freq) == expected


def test_the_nodes_demodulation_limits_are_the_datasheets_as_the_air_has_them():
    from hil_tests.virtual.air import SNR_LIMIT_DB
    assert {sf: eu868.snr_limit_db(sf) for sf in range(7, 13)} \
        == {sf: SNR_LIMIT_DB[sf] for sf in range(7, 13)}


def test_the_nodes_airtime_matches_the_protocols_reference():
    # eu868.time_on_air_ms keeps the node's heap free of protocol/airtime.py: it must give
    # the same figures for every setting the link can use.
    from protocol import airtime
    for bw in eu868.BANDWIDTHS_HZ:
        for sf in range(7, 13):
            for cr in range(5, 9):
                for length in (1, 13, 20, 51, 128, 255):
                    for preamble in (6, 8, 12):
                        reference = airtime.time_on_air_ms(length, sf, bw / 1000, cr - 4,
                                                           preamble)
                        mine = eu868.time_on_air_ms(length, sf, bw, cr, preamble)
                        assert mine == pytest.approx(reference, rel=1e-12), (bw, sf, cr, length)


@pytest.mark.parametrize("args, ms", [((20, 7, 125000, 5, 8), 56.576),
                                      ((20, 9, 125000, 5, 8), 185.344),
                                      ((51, 12, 125000, 5, 8), 2465.792)])
def test_the_nodes_airtime_is_the_same_on_micropython(micropython_apps, args, ms):
    assert micropython_apps.call("net.eu868.time_on_air_ms", *args) == pytest.approx(ms)
    assert eu868.time_on_air_ms(*args) == pytest.approx(ms)


# ---------------------------------------------------------------- duty cycle

def test_a_transmission_closes_its_sub_band_for_99_times_its_airtime(rt):
    budget = budget_after(rt, [(868100000, 200.0, 1000)])
    # Open again at 1000 + 200 + 19800 ms (the booking rounds up by up to 2 ms), on every
    # channel of the sub-band, never sooner.
    assert 19800 <= rt.method(budget, "wait_ms", 868300000, 1200) <= 19802
    assert rt.method(budget, "wait_ms", 868500000, 20999) > 0
    assert rt.method(budget, "wait_ms", 868100000, 21002) == 0


def test_the_off_time_counts_from_the_real_end_of_a_late_transmission(rt):
    budget = budget_after(rt, [(868100000, 200.0, 1100)])
    # Booked as if starting at 1100; it really ended at 1500 (the radio started late).
    rt.method(budget, "ended", 868100000, 200.0, 1500)
    assert rt.method(budget, "wait_ms", 868100000, 21299) > 0
    assert rt.method(budget, "wait_ms", 868100000, 21302) == 0


def test_another_sub_band_stays_open(rt):
    budget = budget_after(rt, [(868100000, 200.0, 1000)])
    assert rt.method(budget, "usable", [868100000, 867100000, 868500000], 2000) == [867100000]
    assert 19000 <= rt.method(budget, "soonest_ms", [868100000, 868300000], 2000) <= 19002


def test_the_booked_off_time_is_rounded_against_the_sender(rt):
    budget = budget_after(rt, [(868100000, 61.696, 0)])
    # 61.696 ms x 100 = 6169.6 ms: the band may open at 6170 at the soonest, never at 6169.
    assert rt.method(budget, "wait_ms", 868100000, 6169) >= 1
    assert rt.method(budget, "wait_ms", 868100000, 6171) == 0


def test_the_budget_survives_as_plain_state(rt):
    before = budget_after(rt, [(868100000, 200.0, 1000), (867100000, 100.0, 1500)])
    saved = before.open_at if isinstance(before, eu868.Budget) else rt.fields(before)["open_at"]
    after = rt.call("net.eu868.Budget", saved)
    assert rt.method(after, "wait_ms", 868300000, 1200) == \
        rt.method(before, "wait_ms", 868300000, 1200) >= 19800
    assert rt.method(after, "wait_ms", 867300000, 1600) == \
        rt.method(before, "wait_ms", 867300000, 1600) >= 9900


def test_no_channel_is_picked_while_every_sub_band_is_closed(rt):
    budget = budget_after(rt, [(868100000, 200.0, 0)])
    assert rt.call("net.eu868.pick_channel", [868100000, 868300000], budget, 100, 7) is None


def test_uplinks_spread_over_the_open_channels(rt):
    budget = rt.call("net.eu868.Budget")
    channels = [868100000, 868300000, 868500000]
    picked = {rt.call("net.eu868.pick_channel", channels, budget, 0, r) for r in range(6)}
    assert picked == set(channels)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 255), st.sampled_from([7, 9, 12]),
                          st.integers(0, 30000), st.integers(0, 100)), min_size=2, max_size=30))
def test_a_node_sending_whenever_allowed_keeps_the_off_time_after_every_frame(frames):
    # Each frame goes out at the earliest instant the budget allows after the node wants to
    # send it, the radio starting up to 100 ms after the booking (as the link books it):
    # every frame starts at least 99 airtimes after the previous one ended.
    budget = eu868.Budget()
    now = 0
    sent = []  # (start, end) in ms, as the air would see them
    for length, sf, pause, delay in frames:
        now += pause
        now += budget.wait_ms(868100000, now)
        airtime = eu868.time_on_air_ms(length, sf, 125000, 5, 8)
        budget.spend(868100000, airtime, now + 100)
        start = now + delay
        end = start + airtime
        budget.ended(868100000, airtime, int(end))  # a ms clock read after the end
        sent.append((start, end))
        now = int(end)
    for (s0, e0), (s1, _) in zip(sent, sent[1:]):
        assert s1 >= e0 + 99 * (e0 - s0) - 1e-9


# ---------------------------------------------------------------- receive window

def test_the_receive_window_opens_early_and_waits_for_the_header(rt):
    start, header, longest = rt.call("net.eu868.rx_timing", 1000, 20, 50, 9, 125000, 5, 8)
    assert start == 980
    # The downlink starts at 1000 ms; 8 preamble + 4.25 + 8 header symbols of 4.096 ms.
    assert header == int(1000 + 20.25 * 4.096 + 50) + 1
    toa_255 = eu868.time_on_air_ms(255, 9, 125000, 5, 8)
    assert longest == int(1000 + toa_255 + 50) + 1


def test_a_margin_longer_than_the_delay_listens_at_once(rt):
    assert rt.call("net.eu868.rx_timing", 100, 300, 0, 7, 125000, 5, 8)[0] == 0


# ---------------------------------------------------------------- bridge line protocol

def test_bridge_lines_are_formatted_as_documented(rt):
    call = rt.call
    assert call("net.bridgeline.ready", "sx1276", 868100000, 9, 125000, 5) == \
        "READY 1 sx1276 868100000 9 125000 4/5"
    up = call("net.bridgeline.up", 3000123, 868100000, 9, 125000, 5, -97, 29, b"\x01\xa1\xff")
    assert up == "UP 3000123 868100000 9 125000 4/5 -97 7.25 01a1ff"
    assert call("net.bridgeline.crc", 7, 868300000, 12, 125000, 8, -120, -58) == \
        "CRC 7 868300000 12 125000 4/8 -120 -14.5"
    assert call("net.bridgeline.ok", 4000123) == "OK 4000123"
    assert call("net.bridgeline.pong", 2 ** 32 + 9) == "PONG 1 9"


def test_a_downlink_line_is_parsed(rt):
    kind, dn = rt.call("net.bridgeline.parse", "DN 4000123 868100000 9 125000 4/6 14 01A1b2\r")
    assert kind == "DN"
    assert dn == {"tmst": 4000123, "freq_hz": 868100000, "sf": 9, "bw_hz": 125000, "cr": 6,
                  "power": 14, "payload": b"\x01\xa1\xb2"}
    kind, dn = rt.call("net.bridgeline.parse", "DN NOW 868100000 7 250000 4/5 2 00")
    assert dn["tmst"] is None and dn["bw_hz"] == 250000
    assert list(rt.call("net.bridgeline.parse", "PING")) == ["PING", None]


@pytest.mark.parametrize("text, answer", [
    ("", "ERR syntax empty line"),
    ("HELLO", "ERR syntax unknown line"),
    ("DN 1 868100000 9 125000 4/5 14", "ERR syntax DN has 7 fields"),
    ("DN x 868100000 9 125000 4/5 14 00", "ERR syntax tmst_us"),
    ("DN 1 868100000 13 125000 4/5 14 00", "ERR param sf 13"),
    ("DN 1 868100000 9 125001 4/5 14 00", "ERR param bw_hz 125001"),
    ("DN 1 868100000 9 125000 4/9 14 00", "ERR param cr 4/9"),
    ("DN 1 868100000 9 125000 4/5 20 00", "ERR param power 20"),
    ("DN 1 100000000 9 125000 4/5 14 00", "ERR param freq_hz 100000000"),
    ("DN 1 868100000 9 125000 4/5 14 0g", "ERR syntax hex"),
    ("DN 1 868100000 9 125000 4/5 14 abc", "ERR syntax hex"),
    ("DN 1 868100000 9 125000 4/5 14 " + "00" * 256, "ERR param length 256"),
])
def test_a_bad_host_line_gets_the_documented_error(text, answer):
    with pytest.raises(bridgeline.LineError) as e:
        bridgeline.parse(text)
    assert e.value.line() == answer


@pytest.mark.parametrize("text, reason", [("DN 1 868100000 13 125000 4/5 14 00", "param"),
                                          ("DN 1 868100000 9 125000 4/5 14 0g", "syntax")])
def test_bad_host_lines_are_refused_on_micropython_too(micropython_apps, text, reason):
    with pytest.raises(RuntimeError, match="LineError: .*%s" % reason):
        micropython_apps.call("net.bridgeline.parse", text)


@pytest.mark.parametrize("tmst, now, ahead", [
    (1000, 0, 1000), (0, 1000, -1000), (5, 2 ** 32 - 5, 10), (2 ** 32 - 5, 5, -10)])
def test_timestamps_compare_across_the_32_bit_wrap(rt, tmst, now, ahead):
    assert rt.call("net.bridgeline.ahead_us", tmst, now) == ahead


# ---------------------------------------------------------------- the config's lora section

def test_an_empty_lora_section_gets_the_documented_defaults(rt):
    lora = rt.call("node.config.lora_section", {}, "config.json")
    assert lora["channels"] == [868100000, 868300000, 868500000]
    assert (lora["sf"], lora["bw_hz"], lora["cr"], lora["power_dbm"]) == (9, 125000, 5, 14)
    assert (lora["rx_delay_ms"], lora["max_payload"]) == (1000, 128)
    assert lora["rx2_freq_hz"] == 869525000  # RX2 in the 10 % sub-band
    assert (lora["adr"], lora["sf_min"], lora["sf_max"]) == (False, 7, 12)


@pytest.mark.parametrize("section, message", [
    (None, "field 'lora' must be an object"),
    ({"sf": 6}, "field 'lora.sf' must be an integer 7..12"),
    ({"power_dbm": 20}, "field 'lora.power_dbm' must be an integer 2..14"),
    ({"bw_hz": 100000}, "field 'lora.bw_hz' must be one of"),
    ({"channels": []}, "field 'lora.channels' must be a list"),
    ({"channels": [869300000]}, "field 'lora.channels': freq_hz 869300000 is in no EU868"),
    ({"channels": [868550000]}, "field 'lora.channels': channel 868550000 Hz .* crosses"),
    ({"channels": ["868.1"]}, "field 'lora.channels': '868.1' is not an integer"),
    ({"bw_hz": 500000, "channels": [868100000]}, "field 'lora.channels': .* crosses"),
    ({"bw_hz": 250000, "sf": 9, "channels": [868300000]}, "field 'lora.sf': .*not an EU868"),
    ({"rx2_freq_hz": 869300000}, "field 'lora.rx2_freq_hz': freq_hz 869300000 is in no EU868"),
    ({"rx2_freq_hz": "869.525"}, "field 'lora.rx2_freq_hz': '869.525' is not an integer"),
    ({"adr": "yes"}, "field 'lora.adr' must be true or false"),
    ({"sf": 12, "sf_max": 10}, "field 'lora.sf' must lie within sf_min..sf_max \\(7..10\\)"),
    ({"adr": True, "bw_hz": 250000, "sf": 7, "channels": [868300000]},
     "field 'lora.sf': SF8 at 250000 Hz is not an EU868 data rate"),
])
def test_a_bad_lora_section_names_the_field(rt, section, message):
    with pytest.raises((config.ConfigError, RuntimeError), match=message):
        rt.call("node.config.lora_section", section, "config.json")
