# A broken gateway.toml or inventory stops the gateway with a message that names the file,
# the line and the field, and a non-zero exit status.
import os
import subprocess
import sys

import pytest

from gateway import config as config_mod
from gateway import inventory
from gateway.errors import ConfigError
from tests.gateway.harness import make_fleet

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_gateway(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=ROOT))


def write(folder, name, text):
    path = os.path.join(str(folder), name)
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.mark.parametrize("text, line, field, words", [
    ("[mqtt]\nenabled = true\nport = \"1883\"\n", 3, "mqtt.port", "a port 1..65535"),
    ("[mqtt]\nport = 70000\n", 2, "mqtt.port", "a port"),
    ("[gateway]\nid = \"gw 1\"\n", 2, "gateway.id", "letters, digits"),
    ("[ingress.udp]\nprot = 4700\n", 2, "ingress.udp.prot", "unknown field"),
    ("[store]\nsynchronous = \"sometimes\"\n", 2, "store.synchronous", "'full', 'normal'"),
    ("[mqtt]\nformat = \"xml\"\n", 2, "mqtt.format", "'json', 'senml'"),
    ("[ngsi_ld]\nenabled = true\n", 1, "ngsi_ld", "missing required field 'url'"),
    ("[http]\nport = 8080\n[http]\nhost = \"x\"\n", 3, None, "TOML syntax error"),
    ("[mqtt\nport = 1\n", 1, None, "TOML syntax error"),
])
def test_bad_config_names_file_line_and_field(tmp_path, text, line, field, words):
    path = write(tmp_path, "gateway.toml", text)
    with pytest.raises(ConfigError) as e:
        config_mod.load(path)
    assert e.value.path == path and e.value.line == line and e.value.field == field
    assert words in str(e.value)
    assert str(e.value).startswith("%s:%d: " % (path, line))


def test_broken_config_exits_non_zero_with_the_message(tmp_path):
    path = write(tmp_path, "gateway.toml", "[gateway]\nid = \"gw-1\"\n\n[mqtt]\nport = -1\n")
    r = run_gateway("--config", path)
    assert r.returncode != 0
    assert "%s:5: mqtt.port: expected a port 1..65535, got -1" % path in r.stderr


INVENTORY_CASES = [
    ('kind = "bin"', "kind", "one of 'fill', 'parking', 'co2', 'luminaire'"),
    ('addr = "12ab3"', "addr", "6 hex digits"),
    ('addr = "100001"', "addr", "duplicate address 100001"),
    ('interval_s = 1', "interval_s", "seconds 10..86400"),
    ('location = { lat = 95.0, lon = 4.0 }', "location.lat", "latitude"),
    ('colour = "red"', "colour", "unknown field"),
]


@pytest.mark.parametrize("line_text, field, words", INVENTORY_CASES)
def test_bad_inventory_entry_names_file_line_device_and_field(tmp_path, line_text, field, words):
    inv, devices = make_fleet(tmp_path, n=3)
    text = open(inv).read().splitlines()
    # Put the bad line in the third device's table, after its interval_s line.
    starts = [i for i, l in enumerate(text) if l == "[[device]]"]
    at = next(i for i in range(starts[2], len(text)) if text[i].startswith("interval_s"))
    key = line_text.split(" =")[0]
    text = [l for i, l in enumerate(text) if not (i > starts[2] and l.startswith(key + " ="))]
    at = next(i for i in range(starts[2], len(text)) if text[i].startswith("enabled"))
    text.insert(at, line_text)
    open(inv, "w").write("\n".join(text) + "\n")
    with pytest.raises(ConfigError) as e:
        inventory.load(inv)
    assert e.value.line == at + 1, str(e.value)
    assert e.value.field == "device[2] (%s).%s" % (devices[2].id, field), str(e.value)
    assert words in str(e.value)


def test_key_file_readable_by_others_is_refused(tmp_path):
    inv, devices = make_fleet(tmp_path, n=2)
    os.chmod(devices[1].key_file, 0o644)
    with pytest.raises(ConfigError) as e:
        inventory.load(inv)
    assert "readable by group or others (mode 0644)" in str(e.value)
    assert "chmod 600" in str(e.value)
    assert e.value.field.endswith(".key_file") and e.value.line is not None


def test_broken_inventory_exits_non_zero_naming_it(tmp_path):
    inv, devices = make_fleet(tmp_path, n=2)
    with open(inv, "a") as f:
        f.write('\n[[device]]\nid = "x"\nkind = "fill"\n')
    cfg = write(tmp_path, "gateway.toml", "[gateway]\ninventory = \"inventory.toml\"\n"
                "[http]\nenabled = false\n[ingress.udp]\nport = 0\n[store]\npath = \"var/db\"\n")
    r = run_gateway("--config", cfg)
    assert r.returncode != 0
    assert "inventory.toml:" in r.stderr and "device[2] (x)" in r.stderr
    assert "missing required field 'addr'" in r.stderr


def test_missing_named_inventory_is_an_error(tmp_path):
    cfg = write(tmp_path, "gateway.toml", "[gateway]\ninventory = \"nope.toml\"\n")
    r = run_gateway("--config", cfg, "check-config")
    assert r.returncode != 0 and "nope.toml: file not found" in r.stderr


def test_devices_cli_adds_disables_and_rekeys(tmp_path):
    inv = os.path.join(str(tmp_path), "inventory.toml")
    r = run_gateway("devices", "--inventory", inv, "add", "bin-1", "fill", "--addr", "00aa01",
                    "--settings", '{"depth_mm": 1200}', "--lat", "52.1", "--lon", "4.3")
    assert r.returncode == 0, r.stderr
    dev = inventory.load(inv).by_id("bin-1")
    assert dev.addr == 0xAA01 and dev.settings == {"depth_mm": 1200}
    assert os.stat(dev.key_file).st_mode & 0o777 == 0o600
    r = run_gateway("devices", "--inventory", inv, "add", "bin-2", "fill")
    assert r.returncode == 0, r.stderr
    assert run_gateway("devices", "--inventory", inv, "disable", "bin-2").returncode == 0
    assert inventory.load(inv).by_id("bin-2").enabled is False
    old_key = dev.key
    assert run_gateway("devices", "--inventory", inv, "rekey", "bin-1").returncode == 0
    new = inventory.load(inv).by_id("bin-1")
    assert new.key != old_key and new.key_epoch == 1 and new.record_prefix == "bin-1@1"
    listing = run_gateway("devices", "--inventory", inv, "list").stdout
    assert "bin-1" in listing and "00aa01" in listing
    r = run_gateway("devices", "--inventory", inv, "add", "bin-3", "fill", "--settings",
                    '{"depth_mm": 100, "blind_mm": 200}')
    assert r.returncode != 0 and "blind_mm" in r.stderr
