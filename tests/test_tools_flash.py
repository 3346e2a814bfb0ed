"""tools/flash end to end on virtual boards reached through their serial console (a pty),
exactly as a technician's laptop reaches an ESP32 on /dev/ttyUSB0."""
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from gateway import inventory
from hil_tests.virtual.board import VirtualBoard
from hil_tests.virtual.kits import kit
from hil_tests.virtual.receiver import InventoryDevices, Receiver

ROOT = Path(__file__).resolve().parent.parent
FLASH = str(ROOT / "tools" / "flash")


@pytest.fixture
def fleet(tmp_path):
    receiver = Receiver({})
    receiver.devices = InventoryDevices(str(tmp_path / "fleet.toml"))
    boards = []

    def board(name="board", flash_bytes=None):
        b = VirtualBoard(tmp_path / name / "flash", name=name, log_dir=tmp_path,
                         console="pty", models=kit("fill").models(), flash_bytes=flash_bytes)
        boards.append(b)
        b.start()
        return b

    def flash(port, *args, device="fill-0001", firmware=("--no-firmware",)):
        cmd = [FLASH, "--port", port, *(("--device", device) if device else ()),
               "--inventory", str(tmp_path / "fleet.toml"),
               "--gateway", "127.0.0.1:%d" % receiver.port, *firmware, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    class Fleet:
        pass
    f = Fleet()
    f.receiver, f.board, f.flash, f.inventory = receiver, board, flash, tmp_path / "fleet.toml"
    yield f
    for b in boards:
        b.close()
    receiver.close()


def snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in Path(folder).rglob("*")
            if p.is_file() and p.parent == Path(folder) and p.name in
            ("boot.py", "main.py", "config.json", "device.key")
            or "lib" in p.relative_to(folder).parts[:1] and p.is_file()}


def test_a_fresh_board_is_provisioned_and_its_first_frame_accepted_with_the_new_key(fleet):
    board = fleet.board()
    done = fleet.flash(board.port, "--kind", "fill")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("ok: fill-0001 fill at 000001"), summary
    dev = inventory.load(fleet.inventory).by_id("fill-0001")
    assert stat.S_IMODE(os.stat(dev.key_file).st_mode) == 0o600
    assert (board.flash / "device.key").read_text().strip() == dev.key.hex()
    assert dev.key.hex() not in done.stdout + done.stderr + board.log_path.read_text()
    assert (board.flash / "lib" / "protocol" / "frame.mpy").exists()
    assert not list((board.flash / "lib").rglob("*.py"))
    fleet.receiver.wait_for(lambda r: any(a[0] == dev.addr for a in r.accepted))
    assert not [r for r in fleet.receiver.rejected if "unknown" not in r[1]]


def test_a_rerun_changes_nothing_and_rekey_changes_board_and_inventory_together(fleet):
    board = fleet.board()
    assert fleet.flash(board.port).returncode == 0
    before_inv = fleet.inventory.read_text()
    old = inventory.load(fleet.inventory).by_id("fill-0001")
    before = snapshot(board.flash)
    again = fleet.flash(board.port)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing written" in again.stdout
    assert snapshot(board.flash) == before
    assert fleet.inventory.read_text() == before_inv

    rekeyed = fleet.flash(board.port, "--rekey")
    assert rekeyed.returncode == 0, rekeyed.stdout + rekeyed.stderr
    assert "1 file(s) / 32 bytes written" in rekeyed.stdout
    new = inventory.load(fleet.inventory).by_id("fill-0001")
    assert new.key != old.key and new.key_epoch == old.key_epoch + 1
    assert (board.flash / "device.key").read_text().strip() == new.key.hex()
    assert rekeyed.stdout.strip().splitlines()[-1].startswith("ok:")  # accepted, new key
    assert new.key.hex() not in rekeyed.stdout + rekeyed.stderr


def test_duplicate_id_and_address_are_refused_with_a_clear_message(fleet):
    first = fleet.board("first")
    assert fleet.flash(first.port, "--addr", "00abcd").returncode == 0
    second = fleet.board("second")
    dup = fleet.flash(second.port)  # the same id typed for another board
    assert dup.returncode == 1
    assert dup.stderr.startswith("tools/flash: duplicate device id fill-0001: it is already "
                                 "in the inventory"), dup.stderr
    dup_addr = fleet.flash(second.port, "--addr", "00abcd", device="fill-0002")
    assert dup_addr.returncode == 1
    assert dup_addr.stderr == ("tools/flash: duplicate address 00abcd: already used by "
                               "fill-0001\n")
    assert not (second.flash / "config.json").exists()


def test_an_interrupted_deploy_is_detected_and_recovered_on_the_next_run(fleet):
    board = fleet.board()
    proc = subprocess.Popen([FLASH, "--port", board.port, "--device", "fill-0001",
                             "--inventory", str(fleet.inventory), "--gateway",
                             "127.0.0.1:%d" % fleet.receiver.port, "--no-firmware",
                             "--step-timeout", "6"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while len(list((board.flash / "lib").rglob("*.mpy"))) < 5:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    board.kill()  # the power goes halfway through the copy
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and err.startswith("tools/flash: "), out + err
    assert len(err.strip().splitlines()) == 1
    done = fleet.flash(board.port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "copying" in done.stdout and done.stdout.strip().splitlines()[-1].startswith("ok:")
    dev = inventory.load(fleet.inventory).by_id("fill-0001")
    assert (board.flash / "device.key").read_text().strip() == dev.key.hex()
    assert "nothing written" in fleet.flash(board.port).stdout


def test_dry_run_prints_every_step_and_the_esptool_command_and_touches_nothing(tmp_path):
    image = tmp_path / "ESP32_GENERIC-v1.29.0.bin"
    inv = tmp_path / "fleet.toml"
    done = subprocess.run([FLASH, "--port", "/dev/ttyUSB7", "--device", "fill-0009",
                           "--inventory", str(inv), "--gateway", "10.0.0.2:4700",
                           "--firmware", str(image), "--dry-run"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "-m esptool --port /dev/ttyUSB7 --chip esp32 erase_flash" in out
    assert "-m esptool --port /dev/ttyUSB7 --chip esp32 write_flash 0x1000 %s" % image in out
    assert "mpremote connect /dev/ttyUSB7" in out
    for step in ("1. ", "2. ", "3. ", "4. ", "5. ", "6. "):
        assert "\n" + step in "\n" + out
    assert not inv.exists() and not (tmp_path / "keys").exists()


def test_the_real_esptool_against_a_port_that_is_not_an_esp32_fails_clearly(fleet, tmp_path):
    board = fleet.board()  # MicroPython's REPL on a pty: no ESP32 ROM bootloader there
    image = tmp_path / "image.bin"
    image.write_bytes(b"\xe9" + bytes(4095))
    done = fleet.flash(board.port, firmware=("--firmware", str(image)))
    assert done.returncode == 1
    assert done.stderr.startswith("tools/flash: esptool could not flash an ESP32 on %s"
                                  % board.port), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "-m esptool --port %s --chip esp32 erase_flash" % board.port in done.stdout
    assert not fleet.inventory.exists()


def test_a_missing_port_and_a_port_without_micropython_are_named(tmp_path):
    base = [FLASH, "--device", "x-1", "--inventory", str(tmp_path / "f.toml"),
            "--gateway", "10.0.0.2:4700", "--no-firmware"]
    gone = subprocess.run(base + ["--port", "/dev/ttyUSB-gone"], capture_output=True, text=True)
    assert gone.returncode == 1
    assert gone.stderr.startswith("tools/flash: port /dev/ttyUSB-gone not found")
    master, slave = os.openpty()  # a serial port where nothing answers
    try:
        silent = subprocess.run(base + ["--port", os.ttyname(slave)], capture_output=True,
                                text=True, timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert silent.returncode == 1
    assert silent.stderr.startswith("tools/flash: no MicroPython on the board at")


def test_a_busy_port_and_a_version_mismatch_are_refused_before_anything_is_written(
        fleet, monkeypatch, capsys):
    import serial

    from tools import flash
    board = fleet.board()
    args = ["--port", board.port, "--device", "fill-0001", "--inventory",
            str(fleet.inventory), "--gateway", "127.0.0.1:%d" % fleet.receiver.port,
            "--no-firmware"]
    holder = serial.Serial(board.port, 115200, exclusive=True)  # a serial monitor has it
    try:
        assert flash.main(args) == 1
    finally:
        holder.close()
    err = capsys.readouterr().err
    assert err.startswith("tools/flash: port %s is busy: close the serial monitor (or other "
                          "tool) using it (" % board.port) and "exclusively lock" in err, err
    assert flash.board_mpy_version(2822) == (6, 3)  # the unix port's x64 6.3
    monkeypatch.setattr(flash, "mpy_cross_version", lambda: (6, 1))
    assert flash.main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("tools/flash: version mismatch: the board's MicroPython reads .mpy "
                          "v6.3, this mpy-cross writes v6.1"), err
    assert not fleet.inventory.exists() and not (board.flash / "lib").exists()


PLANNED = """\
# fleet.toml as city IT writes it before the boards arrive: no key_file yet
[[device]]
id = "glass-damrak"
kind = "fill"
addr = "00d001"
location = { lat = 52.3731, lon = 4.8922 }
interval_s = 600
[device.settings]
depth_mm = 1800
"""


def test_a_planned_device_is_listed_but_unknown_to_the_gateway_until_provisioned(tmp_path):
    from gateway.registry import Registry
    from gateway.store import Store
    inv = tmp_path / "fleet.toml"
    inv.write_text(PLANNED)
    dev = inventory.load(inv).by_id("glass-damrak")
    assert dev.planned and dev.key == b"" and dev.settings == {"depth_mm": 1800}
    store = Store(str(tmp_path / "gw.sqlite"))
    try:
        assert Registry(store, str(inv)).by_id == {}
        provisioned = inventory.provision(str(inv), "glass-damrak")
        assert not provisioned.planned and len(provisioned.key) == 16
        assert stat.S_IMODE(os.stat(provisioned.key_file).st_mode) == 0o600
        again = inventory.load(inv).by_id("glass-damrak")
        assert again.key == provisioned.key and again.location == dev.location
        assert list(Registry(store, str(inv)).by_id) == ["glass-damrak"]
    finally:
        store.close()


def test_a_batch_provisions_every_planned_device_one_board_per_port(fleet):
    fleet.inventory.write_text(PLANNED)
    boards = [fleet.board("b1"), fleet.board("b2"), fleet.board("b3")]
    ports = [arg for b in boards for arg in ("--port", b.port)]
    done = subprocess.run([FLASH, *ports, "--batch", "--count", "2", "--kind", "fill",
                           "--inventory", str(fleet.inventory), "--gateway",
                           "127.0.0.1:%d" % fleet.receiver.port, "--no-firmware"],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "batch: 3 provisioned, 0 failed" in done.stdout
    devices = inventory.load(fleet.inventory).devices
    assert [d.id for d in devices] == ["glass-damrak", "fill-0001", "fill-0002"]
    assert [b.flash.joinpath("device.key").read_text().strip() for b in boards] == \
        [d.key.hex() for d in devices]
    assert devices[0].settings == {"depth_mm": 1800} and devices[0].location.lat == 52.3731
    for dev in devices:
        fleet.receiver.wait_for(lambda r, a=dev.addr: any(x[0] == a for x in r.accepted))
    again = subprocess.run([FLASH, "--port", boards[0].port, "--batch", "--inventory",
                            str(fleet.inventory), "--gateway", "127.0.0.1:1", "--no-firmware"],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "no planned device" in again.stdout


def test_a_batch_with_more_devices_than_boards_stops_and_says_what_is_left(fleet):
    board = fleet.board()
    done = fleet.flash(board.port, "--batch", "--count", "2", "--kind", "fill", device=None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 device(s) still planned: put the next board(s) on %s and run again" % board.port \
        in done.stdout
    planned = [d.id for d in inventory.load(fleet.inventory, read_keys=False).devices
               if d.planned]
    assert planned == ["fill-0002"]


def test_a_board_whose_flash_is_too_small_is_refused_before_anything_is_written(fleet):
    board = fleet.board(flash_bytes=32 * 1024)  # far less than the firmware needs
    done = fleet.flash(board.port)
    assert done.returncode == 1
    assert done.stderr.startswith("tools/flash: disk full: the board's flash at %s has "
                                  % board.port), done.stderr
    assert not (board.flash / "lib").exists() and not fleet.inventory.exists()


def test_the_transports_option_writes_the_links_in_order_with_the_boards_radio_wiring():
    from hil_tests.virtual.kits import LORA_PINS
    from tools import flash
    dev = inventory.Device(id="fill-0001", kind="fill", addr=1, key_file="")
    base = ["--port", "/dev/ttyUSB0", "--device", "fill-0001", "--inventory", "f.toml",
            "--no-firmware"]
    lora_only = flash.node_config(dev, flash.parse(base + ["--transports", "lora",
                                                           "--lora-sf", "10"]))
    assert lora_only["transports"] == ["lora"] and "wifi" not in lora_only
    assert lora_only["lora"] == dict(LORA_PINS, sf=10)
    both = flash.node_config(dev, flash.parse(base + ["--transports", "lora,wifi",
                                                      "--gateway", "10.0.0.2:4700"]))
    assert both["transports"] == ["lora", "wifi"]
    assert both["wifi"]["gateway"] == "10.0.0.2" and both["lora"]["sf"] == 9
    sx1262 = flash.node_config(dev, flash.parse(base + ["--transports", "lora",
                                                        "--lora-chip", "sx126x"]))
    assert sx1262["lora"] == dict(flash.HELTEC_V3_PINS, chip="sx126x", sf=9)
    assert (sx1262["lora"]["busy"], sx1262["lora"]["dio1"]) == (13, 14)
    for bad in (["--transports", "wifi"], ["--transports", "lora,lora"],
                ["--transports", "zigbee"]):
        with pytest.raises(SystemExit):
            flash.parse(base + bad)  # wifi without --gateway; a repeat; an unknown link
