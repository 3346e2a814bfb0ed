# The stage in front of the pipeline that collects the copies of one radio frame and hands
# over the best one first (gateway/radio_dedup.py); the end-to-end case with two packet
# forwarders is in test_semtech_udp.py.
import asyncio

from gateway.radio_dedup import RadioDedup
from gateway.uplink import Uplink


def copy(receiver, snr, rssi, raw=b"frame"):
    return Uplink(raw=raw, source="semtech", received=0.0,
                  radio={"receiver": receiver, "snr": snr, "rssi": rssi},
                  reply=lambda data: None)


def test_copies_are_ranked_by_snr_then_rssi_and_only_the_best_keeps_its_reply():
    out = []

    async def main():
        d = RadioDedup(sink=out.append, window_s=0.05)
        d.submit(copy("a", 2.0, -110))
        d.submit(copy("b", 7.5, -120))
        d.submit(copy("c", 7.5, -95))  # the same SNR as b, a stronger signal
        d.submit(copy("x", None, None, raw=b"other"))  # another frame, no SNR known
        await asyncio.sleep(0.15)

    asyncio.run(main())
    frame = [u for u in out if u.raw == b"frame"]
    assert [u.receiver for u in frame] == ["c", "b", "a"]
    assert frame[0].reply is not None and all(u.reply is None for u in frame[1:])
    assert frame[0].radio["receivers"] == ["c", "b", "a"]
    other = [u for u in out if u.raw == b"other"]
    assert len(other) == 1 and other[0].reply is not None and "receivers" not in other[0].radio


def test_a_late_copy_is_silent_but_a_retransmission_is_answered_again():
    now = [1000.0]
    out = []
    d = RadioDedup(sink=out.append, window_s=0, late_s=2.0, clock=lambda: now[0])
    d.submit(copy("a", 1.0, -100))
    now[0] += 1.5
    d.submit(copy("b", 9.0, -90))  # after the window, within late_s: a copy, no reply
    now[0] += 30  # the node missed its receipt and sends the same bytes again
    d.submit(copy("a", 1.0, -100))
    # Sooner than late_s, but a receiver that heard the frame already: the node sent again
    # (a simulation that runs faster than real time does this).
    now[0] += 0.5
    d.submit(copy("a", 1.0, -100))
    assert [u.reply is not None for u in out] == [True, False, True, True]
    assert len(d.recent) == 1
