"""tools/frame, run as a technician runs it: encode from JSON, decode to JSON, and a clear
one-line reason with exit status 1 for each way a frame can be wrong."""
import json
import subprocess

import pytest

from tools.mpybuild import ROOT

KEY = "000102030405060708090a0b0c0d0e0f"
FRAME = "0912ab34002aa354741907f288a94b6ed36eebc6e91e"  # PROTOCOL.md's uplink example
READING = {"level_pct": 85.5, "distance_mm": 812, "temperature_c": 31.4, "hours_to_full": 40,
           "fault": 0}


def frame_tool(*args, stdin=None):
    return subprocess.run([str(ROOT / "tools" / "frame"), *args], capture_output=True,
                          text=True, input=stdin, timeout=60)


def test_encode_builds_the_documented_frame():
    result = frame_tool("encode", "--key", KEY, "--addr", "12ab34", "--fcnt", "65578",
                        "--kind", "fill", json.dumps(READING))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == FRAME


def test_decode_prints_every_field_as_json():
    result = frame_tool("decode", "--key", KEY, FRAME)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["kind"] == "fill" and out["addr"] == "12ab34" and out["fcnt"] == 65578
    assert out["direction"] == "up" and out["mic"] == FRAME[-8:] and out["length"] == 22
    assert out["message"] == READING


def test_key_file_and_stdin_work(tmp_path):
    key_file = tmp_path / "device.key"
    key_file.write_text(KEY + "\n")
    result = frame_tool("decode", "--key-file", str(key_file), stdin=FRAME + "\n")
    assert json.loads(result.stdout)["fcnt"] == 65578


def test_downlink_command_encodes_and_decodes():
    cmd = {"command_id": 7, "command": "dim_override", "arg": [30, 120]}
    sealed = frame_tool("encode", "--key", KEY, "--addr", "12ab34", "--fcnt", "5", "--kind",
                        "command", stdin=json.dumps(cmd)).stdout.strip()
    out = json.loads(frame_tool("decode", "--key", KEY, sealed).stdout)
    assert out["direction"] == "down" and out["kind"] == "command" and out["message"] == cmd


@pytest.mark.parametrize("args, reason", [
    (("decode", "--key", KEY, FRAME[:-1] + "f"), "bad MIC"),
    (("decode", "--key", "00" * 16, FRAME), "bad MIC"),
    (("decode", "--key", KEY, FRAME[:10]), "truncated"),
    (("decode", "--key", KEY, "--newest", "65578", FRAME), "already accepted (replay)"),
    (("decode", "--key", KEY, "--newest", "65600", FRAME), "already accepted (replay)"),
    # 63 counters behind is the window's edge; beyond it the low bits mean the next epoch
    (("decode", "--key", KEY, "--newest", "70000", FRAME), "bad MIC for device 12ab34 counter 131114"),
    (("decode", "--key", KEY, "08" + FRAME[2:]), "version 0"),
    (("decode", "--key", KEY, "zz"), "not hex"),
    (("decode", "--key", "0102", FRAME), "16 bytes"),
    (("decode", FRAME), "device key is needed"),
    (("encode", "--key", KEY, "--addr", "12ab34", "--fcnt", "1", "--kind", "fill",
      '{"level_pct": 101}'), "fill.level_pct: 101 is out of range"),
    (("encode", "--key", KEY, "--addr", "12ab34", "--fcnt", "1", "--kind", "fridge", "{}"),
     "unknown message kind 'fridge'"),
    (("encode", "--key", KEY, "--addr", "12ab34", "--fcnt", "1", "--kind", "fill", "{"),
     "not valid JSON"),
    (("encode", "--key", KEY, "--addr", "1000000", "--fcnt", "1", "--kind", "fill", "{}"),
     "not 24-bit"),
])
def test_every_failure_says_why_and_exits_non_zero(args, reason):
    result = frame_tool(*args)
    assert result.returncode == 1
    assert reason in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_an_unknown_kind_on_air_is_reported():
    sealed = frame_tool("encode", "--key", KEY, "--addr", "12ab34", "--fcnt", "1", "--kind",
                        "fill", json.dumps(READING)).stdout.strip()
    data = bytearray(bytes.fromhex(sealed))
    # kind 17 with a valid MIC: built with the library, since the tool refuses the kind
    from protocol import frame
    keys = frame.Keys(bytes.fromhex(KEY))
    forged = frame.seal(keys, 17, 0x12AB34, 1, bytes(data[6:-4]))
    result = frame_tool("decode", "--key", KEY, forged.hex())
    assert result.returncode == 1 and "unknown message kind 17" in result.stderr
