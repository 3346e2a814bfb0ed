# The gateway's transmitters keep the EU868 duty cycle: at most dc x 1 h of airtime in any
# hour per sub-band (gateway/ingress/duty_cycle.py), in each receiver's own clock.
import base64

from protocol import airtime

from gateway.ingress.duty_cycle import TxBudget, Unwrapped
from tests.gateway.broker import wait_until
from tests.gateway.radio import open_down, uplink
from tests.gateway.test_semtech_udp import EUI_A, Forwarder, rxpk, semtech_gateway, server_of


def test_a_sub_band_takes_one_percent_of_an_hour_and_frees_it_an_hour_later():
    b = TxBudget()
    assert b.take(868100000, 20.0, at=0.0) and b.take(868500000, 16.0, at=10.0)
    assert not b.take(868300000, 0.1, at=20.0)  # 36 s of 868.0-868.6 MHz used up
    assert b.take(869525000, 300.0, at=20.0)  # 869.4-869.65 MHz has 10%: its own budget
    assert b.take(865100000, 36.0, at=20.0)  # 865-868 MHz: 1%, also its own
    assert not b.take(868100000, 5.0, at=3599.0)
    assert b.take(868100000, 5.0, at=3600.0)  # the first 20 s left the window
    assert b.used_s(868100000) == 21.0
    assert not b.take(868650000, 0.01, at=0.0)  # 868.6-868.7 MHz: not for general use


def test_a_receivers_counter_is_unwrapped_across_its_32_bit_wrap():
    u = Unwrapped()
    assert u.seconds(0xFFFFFF00) == 0xFFFFFF00 / 1e6
    assert u.seconds(0x100) == ((1 << 32) + 0x100) / 1e6  # wrapped: later, not earlier
    assert u.seconds(0xFFFFFFF0) == ((1 << 32) - 0x10) / 1e6  # a little behind the newest
    assert u.seconds(0x200) == ((1 << 32) + 0x200) / 1e6


def _receipts_at_sf12(g, dev, count):
    """Push `count` uplinks at SF12, one every 5 s of the gateway's clock; the PULL_RESPs."""
    fw = Forwarder(EUI_A, server_of(g))
    fw.pull()
    for i in range(count):
        fw.push([rxpk(uplink(dev, i), tmst=1000000 + i * 5000000, datr="SF12BW125")],
                token=i)
    return fw


RECEIPT_S = airtime.time_on_air_ms(13, 12, 125, 1) / 1000  # a receipt at SF12
FITS_RX1 = int(36.0 // RECEIPT_S)  # 31 in the hour of 868.0-868.6 MHz


def test_receipts_beyond_rx1s_hourly_budget_go_in_rx2(tmp_path, fleet):
    inv, devices = fleet
    dev = devices[0]
    with semtech_gateway(tmp_path, inv) as g:
        fw = _receipts_at_sf12(g, dev, FITS_RX1 + 2)
        sent = [fw.pull_resp() for _ in range(FITS_RX1 + 2)]
        assert None not in sent
        by_fcnt = {open_down(dev, base64.b64decode(pk["data"]))[1]["fcnt"]: pk
                   for _, pk in sent}
        assert sorted(by_fcnt) == list(range(FITS_RX1 + 2))
        for fcnt, pk in by_fcnt.items():
            rx1 = 1000000 + fcnt * 5000000 + 1000000
            if fcnt < FITS_RX1:  # RX1: the uplink's channel, rx_delay after it
                assert (pk["freq"], pk["tmst"]) == (868.1, rx1)
            else:  # RX2: 869.525 MHz (10 % sub-band), a second later, same data rate
                assert (pk["freq"], pk["tmst"]) == (869.525, rx1 + 1000000)
            assert pk["datr"] == "SF12BW125" and pk["ipol"] is True
        assert g.metric("cityedge_downlink_errors_total", ingress="semtech",
                        reason="duty_cycle") == 0
        fw.close()


def test_downlinks_beyond_the_hourly_budget_are_not_sent(tmp_path, fleet):
    inv, devices = fleet
    dev = devices[0]
    with semtech_gateway(tmp_path, inv, rx2_freq_hz=0) as g:  # RX1 only
        fw = _receipts_at_sf12(g, dev, FITS_RX1 + 2)
        sent = []
        while len(sent) < FITS_RX1:
            got = fw.pull_resp()
            assert got is not None, "only %d receipts sent" % len(sent)
            sent.append(got[1])
        wait_until(lambda: g.metric("cityedge_downlink_errors_total", ingress="semtech",
                                    reason="duty_cycle") == 2, 5, "two receipts refused")
        assert fw.pull_resp(timeout=0.3) is None
        assert [open_down(dev, base64.b64decode(pk["data"]))[1]["fcnt"] for pk in sent] \
            == list(range(FITS_RX1))
        assert g.metric("cityedge_frames_accepted_total", ingress="semtech") == FITS_RX1 + 2
        fw.close()
