"""The simulated air on synthetic transmitters: collisions, capture, path loss, random loss,
the horizon, and the delivered fraction next to the ALOHA model."""
import random
import threading
import time

import pytest

from hil_tests.virtual.air import Air, LogDistance, Modulation, Transmitter, aloha_success
from protocol import airtime

SF9 = Modulation(868100000, 9)


class Receiver:
    def __init__(self, label="gw", position=(0.0, 0.0)):
        self.label = label
        self.position = position

    def transmissions(self):
        return ()


def pair(air, a_pos=(100.0, 0.0), b_pos=(100.0, 0.0)):
    a, b = Transmitter("a", a_pos), Transmitter("b", b_pos)
    air.join(a)
    air.join(b)
    return a, b


def settle(*radios):
    for r in radios:
        r.now = float("inf")


def test_lone_frame_is_delivered_with_rssi_from_the_log_distance_model():
    air = Air()
    a, b = pair(air)
    f = a.send(air, b"x" * 20, 0, SF9)
    settle(a, b)
    fate = air.fate(f, Receiver())
    assert fate.status == "delivered"
    assert fate.rssi == pytest.approx(14 - (31.2 + 30 * 2))  # 100 m, n = 3
    assert fate.snr == pytest.approx(fate.rssi - (-174 + 50.969 + 6), abs=0.01)


def test_overlapping_equal_frames_on_one_channel_and_sf_collide_both():
    air = Air()
    a, b = pair(air)
    fa = a.send(air, b"a" * 20, 0, SF9)
    fb = b.send(air, b"b" * 20, 100000, SF9)
    settle(a, b)
    rx = Receiver()
    assert air.fate(fa, rx).status == "corrupt"     # hit after its preamble
    assert air.fate(fb, rx).status == "collided"    # its preamble was hit
    assert air.fate(fb, rx).by == (fa.id,)


def test_other_spreading_factor_or_channel_does_not_collide():
    air = Air()
    a, b = pair(air)
    fa = a.send(air, b"a" * 20, 0, SF9)
    b.send(air, b"b" * 20, 1000, Modulation(868100000, 10))
    b.send(air, b"c" * 20, 2000, Modulation(868300000, 9))
    settle(a, b)
    assert air.fate(fa, Receiver()).status == "delivered"


def test_stronger_frame_captures_if_6_db_above_and_its_preamble_was_clear():
    air = Air()
    a, b = pair(air, a_pos=(50.0, 0.0), b_pos=(1000.0, 0.0))   # 30 dB apart
    near = a.send(air, b"n" * 20, 0, SF9)
    far = b.send(air, b"f" * 20, 100000, SF9)
    settle(a, b)
    rx = Receiver()
    assert air.fate(near, rx).status == "delivered"
    assert air.fate(far, rx).status == "collided"


def test_stronger_frame_is_lost_when_the_weaker_one_hit_its_preamble():
    air = Air()
    a, b = pair(air, a_pos=(50.0, 0.0), b_pos=(1000.0, 0.0))
    far = b.send(air, b"f" * 20, 0, SF9)
    near = a.send(air, b"n" * 20, 100000, SF9)
    settle(a, b)
    assert air.fate(near, Receiver()).status == "collided"
    assert air.fate(far, Receiver()).status == "corrupt"


def test_less_than_6_db_apart_both_are_lost():
    air = Air()
    a, b = pair(air, a_pos=(100.0, 0.0), b_pos=(140.0, 0.0))   # 4.4 dB apart
    fa = a.send(air, b"a" * 20, 0, SF9)
    b.send(air, b"b" * 20, 100000, SF9)
    settle(a, b)
    assert air.fate(fa, Receiver()).status == "corrupt"


def test_frame_below_the_sf_snr_limit_is_too_weak():
    air = Air()
    a, b = pair(air, a_pos=(20000.0, 0.0))
    f = a.send(air, b"x", 0, SF9)
    settle(a, b)
    fate = air.fate(f, Receiver())
    assert fate.status == "too weak" and fate.snr < -12.5


def test_random_loss_rate_matches_the_setting_and_repeats_with_the_seed():
    def lost(seed):
        air = Air(loss=0.2, seed=seed)
        a = Transmitter("a", (100.0, 0.0))
        frames = [a.send(air, b"x", i * 10 ** 6, SF9) for i in range(2000)]
        return [air.fate(f, Receiver(), wait=False).status == "lost" for f in frames]
    first = lost(7)
    assert 0.17 < sum(first) / len(first) < 0.23
    assert lost(7) == first and lost(8) != first


def test_receiver_that_transmits_hears_nothing_meanwhile():
    air = Air()
    a, gw = pair(air)
    f = a.send(air, b"x" * 20, 0, SF9)
    gw.send(air, b"d", 10000, Modulation(868100000, 9, iq_inverted=True))
    settle(a, gw)
    assert air.fate(f, gw).status == "transmitting"


def test_fate_waits_until_every_radio_clock_passed_the_frame_end():
    air = Air()
    a, b = pair(air)
    f = a.send(air, b"a" * 20, 0, SF9)
    a.now = f.end
    result = {}

    def decide():
        result["fate"] = air.fate(f, Receiver())
    thread = threading.Thread(target=decide)
    thread.start()
    time.sleep(0.1)
    assert "fate" not in result          # b could still start a transmission before f ends
    b.send(air, b"b" * 20, f.end - 100000, SF9)
    b.now = f.end
    thread.join(2)
    assert result["fate"].status == "corrupt"


def test_delivered_fraction_follows_pure_aloha_for_equal_power_nodes():
    rng = random.Random(3)
    air = Air(path_loss=LogDistance())
    nodes = [Transmitter("n%d" % i, (500.0, 0.0)) for i in range(200)]
    payload = 24
    toa_us = airtime.time_on_air_ms(payload, 9, 125, 1) * 1000
    span_us = 2 * 3600 * 10 ** 6
    interval_us = 600 * 10 ** 6
    for node in nodes:  # a 10-minute interval with random phase and jitter
        t = rng.uniform(0, interval_us)
        while t < span_us:
            node.send(air, bytes(payload), int(t), SF9)
            t += interval_us + rng.uniform(-30e6, 30e6)
    frames = air.frames
    rx = Receiver()
    delivered = sum(air.fate(f, rx, wait=False).status == "delivered" for f in frames)
    offered = len(frames) * toa_us / span_us
    predicted = aloha_success(offered)
    assert delivered / len(frames) == pytest.approx(predicted, abs=0.03)
    log = [e for e in air.log if e["fate"] != "delivered"]
    assert all(e["by"] for e in log)     # every loss names the frames it collided with
