"""PROTOCOL.md is checked against the code: its worked examples are rebuilt step by step on
both runtimes, and its field table must be exactly protocol.schema.fields()."""
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import cmac as ref_cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from protocol import schema

DOC = (Path(__file__).resolve().parent.parent / "protocol" / "PROTOCOL.md").read_text()


def example(name):
    block = re.search(r"```example %s\n(.*?)```" % name, DOC, re.S).group(1)
    fields = {}
    for line in block.splitlines():
        key, value = line.split(None, 1)
        fields[key] = value
    return fields


def hexbytes(text):
    return bytes.fromhex(text.replace(" ", ""))


def aes(key, block):
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(block)


def test_uplink_example_is_rebuilt_step_by_step():
    ex = example("uplink")
    key = hexbytes(ex["device_key"])
    k_enc, k_mic = aes(key, b"\x01" + bytes(15)), aes(key, b"\x02" + bytes(15))
    assert (k_enc.hex(), k_mic.hex()) == (ex["k_enc"], ex["k_mic"])
    body = schema.encode(int(ex["kind"]), json.loads(ex["reading"]))
    assert body == hexbytes(ex["body"])
    keystream = aes(k_enc, hexbytes(ex["a1"]))[:len(body)]
    assert keystream == hexbytes(ex["keystream"])
    ciphertext = bytes(a ^ b for a, b in zip(body, keystream))
    assert ciphertext == hexbytes(ex["ciphertext"])
    msg = hexbytes(ex["header"]) + ciphertext
    assert hexbytes(ex["b0"])[-1] == len(msg)
    mac = ref_cmac.CMAC(algorithms.AES(k_mic))
    mac.update(hexbytes(ex["b0"]) + msg)
    full = mac.finalize()
    assert full == hexbytes(ex["cmac"]) and full[:4] == hexbytes(ex["mic"])
    assert msg + full[:4] == hexbytes(ex["frame"])


@pytest.mark.parametrize("name", ["uplink", "downlink"])
def test_examples_are_what_both_runtimes_seal_and_open(runtime, name):
    ex = example(name)
    keys = runtime.call("protocol.frame.Keys", hexbytes(ex["device_key"]))
    kind, fcnt = int(ex["kind"]), int(ex["fcnt"], 16)
    if name == "uplink":
        body = runtime.call("protocol.schema.encode", kind, json.loads(ex["reading"]))
    else:
        cmd = json.loads(ex["command"])
        body = runtime.call("protocol.command.encode", cmd["command_id"], cmd["command"],
                            cmd["arg"])
    assert body == hexbytes(ex["body"])
    sealed = runtime.call("protocol.frame.seal", keys, kind, int(ex["addr"], 16), fcnt, body,
                          int(ex["direction"]))
    assert sealed == hexbytes(ex["frame"])
    assert sealed[:6] == hexbytes(ex["header"])
    assert runtime.call("protocol.frame.unseal", keys, sealed, fcnt) == body


def test_field_table_is_exactly_the_schema():
    table = DOC.split("### Bodies", 1)[1].split("What the fields mean", 1)[0]
    documented = []
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[1].isdigit():
            kind, i, field, unit, scale, limits = cells
            documented.append((kind, int(i), field, unit, scale, limits))
    expected = []
    for kind in schema.kinds():
        specs = schema.fields(kind)
        for i, (field, scale, lo, hi, unit) in enumerate(specs):
            if scale is None:
                expected.append((schema.kind_name(kind), i, field, unit, "bool", ""))
            else:
                expected.append((schema.kind_name(kind), i, field, unit, str(scale),
                                 "%s .. %s" % (lo, hi)))
    assert documented == expected
