"""protocol/frame.py on both runtimes: sealing and opening frames, every way a frame can be
wrong, counter reconstruction and the replay window; plus a reference construction written
with `cryptography` alone, which is what a gateway fast path must agree with."""
import pytest
from cryptography.hazmat.primitives import cmac as ref_cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import counters, frame
from protocol.errors import FrameError, MICError, ProtocolError, ReplayError

KEY = bytes(range(16))
ADDR = 0x12AB34
BODY = bytes.fromhex("8518ab19032c19013a182800")


def seal(rt, kind=1, addr=ADDR, fcnt=0x1002A, body=BODY, direction=0, key=KEY):
    keys = rt.call("protocol.frame.Keys", key)
    return rt.call("protocol.frame.seal", keys, kind, addr, fcnt, body, direction)


def unseal(rt, data, fcnt=0x1002A, key=KEY):
    keys = rt.call("protocol.frame.Keys", key)
    return rt.call("protocol.frame.unseal", keys, data, fcnt)


def reference_seal(key, kind, addr, fcnt, body, direction):
    """The frame built with `cryptography` only, following PROTOCOL.md step by step."""
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    k_enc = ecb.update(b"\x01" + bytes(15))
    k_mic = ecb.update(b"\x02" + bytes(15))
    header = (bytes([kind << 3 | direction << 2 | 1]) + addr.to_bytes(3, "big")
              + (fcnt & 0xFFFF).to_bytes(2, "big"))
    nonce = bytes([0x01, direction, 0]) + addr.to_bytes(3, "big") + fcnt.to_bytes(4, "big")
    a1 = nonce + bytes(5) + b"\x01"
    msg = header + Cipher(algorithms.AES(k_enc), modes.CTR(a1)).encryptor().update(body)
    b0 = bytes([0x49]) + nonce[1:] + bytes(5) + bytes([len(msg)])
    mac = ref_cmac.CMAC(algorithms.AES(k_mic))
    mac.update(b0 + msg)
    return msg + mac.finalize()[:4]


def test_sealed_frame_opens_to_the_same_body(runtime):
    data = seal(runtime)
    assert len(data) == frame.OVERHEAD + len(BODY)
    assert unseal(runtime, data) == BODY


def test_header_fields_read_back(runtime):
    hdr = runtime.call("protocol.frame.parse_header", seal(runtime, kind=4, fcnt=0x2345678))
    fields = runtime.fields(hdr)
    assert fields == {"version": 1, "direction": 0, "kind": 4, "addr": ADDR, "fcnt_low": 0x5678}


def test_both_runtimes_build_byte_identical_frames(micropython):
    from tests.runtimes import CPython
    for direction in (0, 1):
        assert seal(micropython, direction=direction) == seal(CPython(), direction=direction)


@settings(max_examples=200)
@given(key=st.binary(min_size=16, max_size=16), kind=st.integers(0, 31),
       addr=st.integers(0, frame.MAX_ADDR), fcnt=st.integers(0, frame.MAX_FCNT),
       body=st.binary(min_size=1, max_size=frame.MAX_BODY), direction=st.sampled_from([0, 1]))
def test_frame_matches_a_reference_built_with_cryptography(key, kind, addr, fcnt, body, direction):
    keys = frame.Keys(key)
    built = frame.seal(keys, kind, addr, fcnt, body, direction)
    assert built == reference_seal(key, kind, addr, fcnt, body, direction)
    assert frame.unseal(keys, built, fcnt) == body


def test_every_flipped_bit_is_rejected(runtime):
    data = seal(runtime)
    for i in range(len(data) * 8):
        broken = bytearray(data)
        broken[i // 8] ^= 1 << (i % 8)
        with pytest.raises(FrameError):
            unseal(runtime, bytes(broken))


def test_flipped_body_or_mic_bit_is_a_bad_mic(runtime):
    data = bytearray(seal(runtime))
    data[frame.HEADER_LEN] ^= 0x01
    with pytest.raises(MICError, match="bad MIC for device 12ab34"):
        unseal(runtime, bytes(data))


def test_wrong_key_is_a_bad_mic(runtime):
    with pytest.raises(MICError):
        unseal(runtime, seal(runtime), key=bytes(16))


def test_same_low_bits_in_another_counter_epoch_is_a_bad_mic(runtime):
    with pytest.raises(MICError):
        unseal(runtime, seal(runtime, fcnt=0x1002A), fcnt=0x2002A)


def test_uplink_cannot_pass_as_downlink(runtime):
    data = bytearray(seal(runtime, direction=0))
    data[0] |= 0x04
    with pytest.raises(MICError):
        unseal(runtime, bytes(data))


@pytest.mark.parametrize("length", [0, 1, 6, 10])
def test_truncated_frame_is_rejected(runtime, length):
    with pytest.raises(FrameError, match="truncated"):
        runtime.call("protocol.frame.parse_header", seal(runtime)[:length])


def test_oversized_frame_is_rejected(runtime):
    with pytest.raises(FrameError, match="oversized"):
        runtime.call("protocol.frame.parse_header", b"\x09" + bytes(255))


def test_other_protocol_version_is_rejected(runtime):
    data = bytearray(seal(runtime))
    data[0] &= 0xFC  # version 0: what a LoRaWAN MHDR (major 0) looks like here
    with pytest.raises(FrameError, match="version 0"):
        runtime.call("protocol.frame.parse_header", bytes(data))


@pytest.mark.parametrize("args, message", [
    ((32, ADDR, 1, BODY, 0), "kind"), ((1, 1 << 24, 1, BODY, 0), "address"),
    ((1, ADDR, 1 << 32, BODY, 0), "counter"), ((1, ADDR, 1, b"", 0), "body"),
    ((1, ADDR, 1, bytes(frame.MAX_BODY + 1), 0), "body"), ((1, ADDR, 1, BODY, 2), "direction")])
def test_unrepresentable_frame_fields_are_refused(runtime, args, message):
    keys = runtime.call("protocol.frame.Keys", KEY)
    with pytest.raises(FrameError, match=message):
        runtime.call("protocol.frame.seal", keys, *args)


@pytest.mark.parametrize("newest, low, expected", [
    (None, 5, 5), (0, 1, 1), (100, 101, 101), (100, 90, 90), (100, 37, 37),
    (100, 36, 0x10024),            # older than the window: read as the next epoch
    (0xFFFF, 0x0000, 0x10000),     # low bits wrap
    (0x1FFF0, 0x0005, 0x20005), (0x20005, 0xFFF0, 0x1FFF0),
    (0x10000, 0xFFC1, 0xFFC1), (0x10000, 0xFFC0, 0x1FFC0)])
def test_full_counter_is_reconstructed_from_the_low_bits(runtime, newest, low, expected):
    assert runtime.call("protocol.counters.full_counter", newest, low) == expected


def test_counter_space_exhaustion_is_reported(runtime):
    with pytest.raises(ReplayError, match="exhausted"):
        runtime.call("protocol.counters.full_counter", 0xFFFFFFF0, 0x0000)


def test_replayed_counter_is_rejected(runtime):
    window = runtime.call("protocol.counters.ReplayWindow")
    runtime.method(window, "accept", 10)
    with pytest.raises(ReplayError, match="already accepted"):
        runtime.method(window, "accept", 10)


def test_out_of_order_counters_inside_the_window_are_each_accepted_once(runtime):
    window = runtime.call("protocol.counters.ReplayWindow")
    for fcnt in (10, 14, 12, 11, 13):
        runtime.method(window, "accept", fcnt)
    for fcnt in (10, 11, 12, 13, 14):
        with pytest.raises(ReplayError):
            runtime.method(window, "accept", fcnt)
    assert runtime.fields(window)["newest"] == 14


def test_counter_older_than_the_window_is_rejected(runtime):
    window = runtime.call("protocol.counters.ReplayWindow")
    runtime.method(window, "accept", 1000)
    with pytest.raises(ReplayError, match="older than the replay window"):
        runtime.method(window, "accept", 1000 - counters.REPLAY_WINDOW)
    runtime.method(window, "accept", 1000 - counters.REPLAY_WINDOW + 1)


def test_a_jump_larger_than_the_window_forgets_the_old_bitmap(runtime):
    window = runtime.call("protocol.counters.ReplayWindow", 5, 1)
    runtime.method(window, "accept", 5 + 500)
    assert runtime.fields(window) == {"newest": 505, "seen": 1}


def test_check_does_not_change_the_window(runtime):
    window = runtime.call("protocol.counters.ReplayWindow", 7, 1)
    runtime.method(window, "check", 8)
    runtime.method(window, "check", 8)
    assert runtime.fields(window) == {"newest": 7, "seen": 1}


@settings(max_examples=300)
@given(accepted=st.lists(st.integers(0, 400), max_size=60))
def test_replay_window_accepts_a_counter_at_most_once(accepted):
    window = counters.ReplayWindow()
    seen = set()
    for fcnt in accepted:
        try:
            window.accept(fcnt)
        except ReplayError:
            assert fcnt in seen or fcnt <= window.newest - counters.REPLAY_WINDOW
        else:
            assert fcnt not in seen
            seen.add(fcnt)


@settings(max_examples=1000)
@given(data=st.binary(max_size=300), fcnt=st.integers(0, frame.MAX_FCNT))
def test_random_bytes_never_open_and_raise_only_protocol_errors(data, fcnt):
    keys = frame.Keys(KEY)
    with pytest.raises(ProtocolError):
        frame.unseal(keys, data, fcnt)
