"""tools/flash: build, flash and provision one ESP32 node in one command.

  tools/flash --port /dev/ttyUSB0 --device fill-0001 --inventory fleet.toml \\
              --kind fill --gateway 192.168.10.2:4700 --wifi-ssid city --firmware ESP32.bin

Steps: (1) erase and write the MicroPython image with esptool (skipped with --no-firmware);
(2) compile firmware/ and protocol/ to .mpy with mpy-cross, after checking that the board's
MicroPython reads that .mpy version; (3) copy with mpremote only the files whose sha256
differs on the board, then check every hash again; (4) write config.json and device.key (a
new key is made here with `secrets`; an existing device keeps its key unless --rekey);
(5) record the device in the inventory the gateway loads (key file mode 0600); (6) reset the
board and watch its console until the first cycle is done, then print one summary line.

Re-running is safe: nothing is written when nothing changed. --dry-run prints every step and
command and touches neither the port nor the inventory. The key is never printed or logged.
The Wi-Fi password, if any, is read from the environment variable CITYEDGE_WIFI_PASSWORD.
"""
import argparse
import contextlib
import hashlib
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from gateway import inventory
from gateway.errors import ConfigError
from hil_tests.virtual.board import deploy
from tools import mpybuild

ROOT = mpybuild.ROOT
BIN = Path(sys.executable).parent
MPREMOTE = str(BIN / "mpremote") if (BIN / "mpremote").exists() else "mpremote"
FIRMWARE_ADDR = "0x1000"
WATCH_TIMEOUT_S = 90
REPL_TIMEOUT_S = 6
BUSY_WAIT_S = 2  # ModemManager and udev probe a newly plugged port for a moment


class FlashError(Exception):
    """A failure the technician can act on: one line, printed as `tools/flash: ...`."""


# ----------------------------------------------------------------------- the build

def mpy_cross_version():
    """(major, minor) of the .mpy files mpy-cross writes, e.g. (6, 3)."""
    out = subprocess.run([mpybuild._tool("mpy-cross"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    found = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not found:
        raise FlashError("cannot tell which .mpy version mpy-cross writes: %r" % out.strip())
    return int(found.group(1)), int(found.group(2))


def board_mpy_version(mpy):
    """sys.implementation._mpy -> (major, minor): the low byte is the version, bits 8..9 the
    sub-version (bits 10.. name the native architecture, which bytecode does not use)."""
    return mpy & 0xFF, (mpy >> 8) & 3


def build(out):
    """The board's files, laid out by the virtual board's deploy(), which is the layout on
    the board: boot.py and main.py as source, every package compiled to .mpy under lib/.
    Returns {board path: local path}."""
    flash = deploy(out)
    return {"/" + p.relative_to(flash).as_posix(): p for p in sorted(flash.rglob("*"))
            if p.is_file()}


# An SX1262 as a Heltec WiFi LoRa 32 V3 (ESP32-S3) wires it; its TCXO runs from the chip's
# DIO3 at 1.8 V and DIO2 drives its antenna switch (the firmware's defaults for an SX126x).
HELTEC_V3_PINS = {"sck": 9, "mosi": 10, "miso": 11, "cs": 8, "reset": 12, "busy": 13,
                  "dio1": 14}


def node_config(dev, args):
    """config.json for a device (see firmware/README.md), from its inventory record and the
    wiring of its kind."""
    from hil_tests.virtual.kits import LORA_PINS, kit  # the reference wiring of each kind
    k = kit(dev.kind)
    settings = dict(k.SETTINGS)
    settings.update(dev.settings)
    cfg = {"device_id": dev.id, "addr": dev.addr_hex, "kind": dev.kind,
           "interval_s": dev.interval_s, "power": k.POWER, "transports": args.transports,
           "sensors": dict(k.SENSORS), "settings": settings}
    if "wifi" in args.transports:
        cfg["wifi"] = {"ssid": args.wifi_ssid, "gateway": args.gateway[0],
                       "port": args.gateway[1]}
        if os.environ.get("CITYEDGE_WIFI_PASSWORD"):
            cfg["wifi"]["password"] = os.environ["CITYEDGE_WIFI_PASSWORD"]
    if "lora" in args.transports:
        if args.lora_chip == "sx126x":
            cfg["lora"] = dict(HELTEC_V3_PINS, chip="sx126x", sf=args.lora_sf)
        else:
            cfg["lora"] = dict(LORA_PINS, sf=args.lora_sf)
    return cfg


# ----------------------------------------------------------------------- the board

# Printed by the board: its .mpy version, then a sha256 for each file we manage.
PROBE = """\
import os, sys, hashlib, binascii
print('MPY', sys.implementation._mpy)
def _h(p):
    h = hashlib.sha256()
    n = 0
    with open(p, 'rb') as f:
        while True:
            b = f.read(1024)
            if not b:
                break
            n += len(b)
            h.update(b)
    return binascii.hexlify(h.digest()).decode() + ' ' + str(n)
def _walk(d):
    for e in os.ilistdir(d):
        p = d + '/' + e[0]
        if e[1] == 0x4000:
            print('D', p)
            _walk(p)
        else:
            print('F', p, _h(p))
for _n in ('boot.py', 'main.py', 'config.json', 'device.key'):
    try:
        print('F', '/' + _n, _h(_n))
    except OSError:
        pass
try:
    _walk('/lib')
except OSError:
    pass
try:
    _s = os.statvfs('/')
    print('FREE', _s[0] * _s[4])
except (AttributeError, OSError):
    pass
try:
    import json
    with open('config.json') as _f:
        print('ID', json.load(_f).get('device_id'))
except OSError:
    pass
except Exception:
    print('ID ?')
"""


# After a re-key: what the board kept under the old key means nothing to the gateway any more
# (it starts the device's counters again at 0): the downlink replay window (RTC memory and
# dn.cnt) would refuse its receipts, and queued frames sealed with the old key never verify.
FORGET_OLD_KEY = """\
import os, machine
machine.RTC().memory(b'')
for _p in ('dn.cnt',):
    try:
        os.remove(_p)
    except OSError:
        pass
try:
    for _n in os.listdir('queue'):
        os.remove('queue/' + _n)
except OSError:
    pass
"""


def mpremote_cmd(port, *args):
    return [MPREMOTE, "connect", port, *args]


def run_mpremote(port, *args, timeout=120, on_line=None):
    """Run one mpremote command; its stdout, each line also given to on_line as it comes."""
    proc = subprocess.Popen(mpremote_cmd(port, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    err = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    reader.start()
    out = []
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            out.append(line)
            if on_line:
                on_line(line)
        proc.wait()
    finally:
        timer.cancel()
    reader.join(5)
    if proc.returncode == -signal.SIGKILL:
        raise FlashError("the board on %s stopped answering (no reply within %d s; was it "
                         "reset or unplugged?): run again to finish" % (port, timeout))
    if proc.returncode != 0:
        said = ("".join(err) or "".join(out)).strip()
        low = said.lower()
        if "could not enter raw repl" in low or "could not enter raw" in low:
            raise FlashError("no MicroPython on the board at %s (no REPL answered): flash it "
                             "with --firmware IMAGE.bin" % port)
        if "busy" in low or "resource temporarily unavailable" in low:
            raise FlashError("port %s is busy: close the serial monitor (or other tool) using "
                             "it (mpremote: %s)" % (port, said.splitlines()[-1]))
        if "enospc" in low or "errno 28" in low:
            raise FlashError("disk full: the board's flash at %s filled up during the copy: "
                             "erase it with --firmware IMAGE.bin, or remove old files "
                             "(mpremote connect %s fs ls)" % (port, port))
        last = said.splitlines()[-1] if said else "exit status %d" % proc.returncode
        raise FlashError("mpremote failed on %s: %s" % (port, last))
    return "".join(out)


def check_port(port):
    """Refuse a missing or busy port before anything else runs."""
    if not os.path.exists(port):
        raise FlashError("port %s not found: is the board plugged in? (ls /dev/ttyUSB* "
                         "/dev/ttyACM*)" % port)
    import serial
    deadline = time.monotonic() + BUSY_WAIT_S
    while True:
        try:
            s = serial.Serial()
            s.port, s.baudrate, s.exclusive = port, 115200, True
            s.dtr = s.rts = False  # never pulse the reset lines here
            s.open()
            break
        except serial.SerialException as e:
            text = str(e)
            busy = "lock" in text.lower() or "busy" in text.lower()
            if busy and time.monotonic() < deadline:
                time.sleep(0.2)  # a port just plugged in or let go may be held for a moment
                continue
            if busy:
                raise FlashError("port %s is busy: close the serial monitor (or other tool) "
                                 "using it (%s)" % (port, text)) from None
            if "Permission denied" in text:
                raise FlashError("no permission to open %s: add yourself to the dialout group "
                                 "(sudo usermod -aG dialout $USER, then log in again)"
                                 % port) from None
            raise FlashError("cannot open port %s: %s" % (port, text)) from None
    try:  # a MicroPython REPL must answer: interrupt whatever runs, ask for the raw REPL
        s.timeout = 0.2
        got, deadline = b"", time.monotonic() + REPL_TIMEOUT_S
        while b"raw REPL; CTRL-B to exit" not in got:
            if time.monotonic() > deadline:
                raise FlashError("no MicroPython on the board at %s (no REPL answered within "
                                 "%d s; a board in deep sleep: press its EN/RESET button and "
                                 "run again)" % (port, REPL_TIMEOUT_S))
            s.write(b"\r\x03\x03\x01")
            end = time.monotonic() + 1
            while time.monotonic() < end and b"raw REPL; CTRL-B to exit" not in got:
                got = got[-200:] + s.read(256)
        s.write(b"\x02")  # back to the normal REPL
        time.sleep(0.05)
    finally:
        s.close()


def probe(port):
    """(mpy, {board path: (sha256, size)}, [folders], device id in its config.json or None
    ("?" when the file is unreadable), bytes free on its flash or None) of the board."""
    out = run_mpremote(port, "exec", PROBE)
    mpy, hashes, dirs, device_id, free = None, {}, [], None, None
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "MPY":
            mpy = int(parts[1])
        elif len(parts) == 2 and parts[0] == "FREE":
            free = int(parts[1])
        elif len(parts) == 4 and parts[0] == "F":
            hashes[parts[1]] = (parts[2], int(parts[3]))
        elif len(parts) == 2 and parts[0] == "D":
            dirs.append(parts[1])
        elif len(parts) == 2 and parts[0] == "ID":
            device_id = parts[1]
    if mpy is None:
        raise FlashError("the board at %s did not report its MicroPython version: %r"
                         % (port, out.strip()[-200:]))
    return mpy, hashes, dirs, device_id, free


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def differs(board_files, remote, path):
    return board_files.get(remote, ("",))[0] != sha256(path)


def deploy_command(port, changed, stale, dirs):
    """One mpremote command line: folders, then config and key (so an interrupted first run
    leaves a board that says who it is), then code; stale files last."""
    args = []
    if dirs:
        make = "import os\nfor d in %r:\n    try:\n        os.mkdir(d)\n    except OSError:\n" \
               "        pass\n" % (sorted(dirs),)
        args += ["exec", make]
    order = sorted(changed, key=lambda p: (p not in ("/config.json", "/device.key"),
                                           p in ("/main.py", "/boot.py"), p))
    for remote in order:
        if args:
            args.append("+")
        args += ["fs", "cp", str(changed[remote]), ":" + remote]
    for remote in sorted(stale):
        if args:
            args.append("+")
        args += ["fs", "rm", ":" + remote]
    return args


def watch_first_cycle(port, timeout, progress):
    """Reset the board through its console and read it until the first cycle is done.
    Returns the `cycle done` line; FlashError on a config error, a failed app or silence."""
    import serial
    s = serial.Serial()
    s.port, s.baudrate, s.timeout = port, 115200, 0.2
    s.dtr = s.rts = False
    s.open()
    try:
        s.write(b"\r\x03\x03")  # stop whatever runs
        time.sleep(0.3)
        s.reset_input_buffer()
        s.write(b"\x01")  # raw REPL
        _read_until(s, b"raw REPL; CTRL-B to exit\r\n>", 10, port)
        s.write(b"import machine\nmachine.reset()\n\x04")
        deadline = time.monotonic() + timeout
        buf = b""
        lines = []
        with progress.task("first cycle"):
            while time.monotonic() < deadline:
                buf += s.read(4096)
                *done, buf = buf.split(b"\n")
                for raw in done:
                    line = raw.decode("utf-8", "replace").strip("\r")
                    lines.append(line)
                    if "node: cycle done" in line:
                        return line
                    if "config error" in line or "app failed" in line:
                        raise FlashError("the board's first cycle failed: %s" % line.strip())
                    if line.startswith("Traceback"):
                        raise FlashError("the board crashed at start-up; console: %s"
                                         % " | ".join(lines[-5:]))
        raise FlashError("no cycle finished within %d s after the reset; last console lines: %s"
                         % (timeout, " | ".join(lines[-5:]) or "(none)"))
    finally:
        s.close()


def _read_until(s, marker, timeout, port):
    got = b""
    deadline = time.monotonic() + timeout
    while marker not in got:
        if time.monotonic() > deadline:
            raise FlashError("no MicroPython on the board at %s (no REPL answered)" % port)
        got += s.read(256)
    return got


# ----------------------------------------------------------------------- inventory

def plan_device(args, device_id):
    """The device's inventory record as it is or will be: (Device, what changes), the change
    being "add" (a new device), "provision" (a planned one gets its key), "rekey" or None."""
    path = args.inventory
    inv = inventory.load(path, read_keys=False) if os.path.exists(path) else \
        inventory.Inventory(path=path)
    dev = inv.by_id(device_id)
    if dev:
        if args.kind and args.kind != dev.kind:
            raise FlashError("duplicate device id %s: the inventory has it as a %s, not a %s"
                             % (dev.id, dev.kind, args.kind))
        if args.addr is not None and args.addr != dev.addr:
            raise FlashError("duplicate device id %s: the inventory has it at address %s, "
                             "not %06x" % (dev.id, dev.addr_hex, args.addr))
        if dev.planned:
            return dev, "provision"
        return dev, ("rekey" if args.rekey else None)
    if args.rekey:
        raise FlashError("--rekey: device %s is not in %s yet" % (device_id, path))
    if not inventory._id_ok(device_id):
        raise FlashError("device id %r: use 1..64 letters, digits, '-', '_' or '.'"
                         % device_id)
    kind = args.kind or "fill"
    used = {d.addr: d.id for d in inv.devices}
    if args.addr is not None and args.addr in used:
        raise FlashError("duplicate address %06x: already used by %s" % (args.addr,
                                                                         used[args.addr]))
    addr = args.addr if args.addr is not None else \
        next(a for a in range(1, 0xFFFFFF) if a not in used)
    from hil_tests.virtual.kits import kit
    k = kit(kind)
    settings = {n: v for n, v in k.SETTINGS.items() if n in inventory.SETTINGS[kind]}
    dev = inventory.Device(id=device_id, kind=kind, addr=addr, key_file="",
                           interval_s=k.INTERVAL, settings=settings,
                           key_file_as_written=os.path.join("keys", device_id + ".key"))
    return dev, "add"


def record(args, dev, change, key):
    """Write the inventory change, once the board holds `key`; returns the Device."""
    try:
        if change == "add":
            inventory.add(args.inventory, id=dev.id, kind=dev.kind, addr=dev.addr,
                          interval_s=dev.interval_s, settings=dev.settings, key=key)
        elif change == "provision":
            inventory.provision(args.inventory, dev.id, key)
        elif change == "rekey":
            inventory.rekey(args.inventory, dev.id, key)
        return inventory.load(args.inventory).by_id(dev.id)
    except ConfigError as e:
        raise FlashError("inventory: %s" % e) from None


def current_key(args, dev):
    """The key the inventory holds for a provisioned device."""
    try:
        return inventory.load(args.inventory).by_id(dev.id).key
    except ConfigError as e:
        raise FlashError("inventory: %s" % e) from None


# ----------------------------------------------------------------------- main

def gateway_address(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError("expected HOST:PORT, e.g. 192.168.10.2:4700")
    return host, int(port)


def transports(text):
    links = text.split(",")
    if not links or len(set(links)) != len(links) or not set(links) <= {"wifi", "lora"}:
        raise argparse.ArgumentTypeError("expected wifi, lora, lora,wifi or wifi,lora")
    return links


def address(text):
    if len(text) != 6 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise argparse.ArgumentTypeError("expected 6 hex digits, e.g. 12ab34")
    return int(text, 16)


def parse(argv):
    p = argparse.ArgumentParser(prog="tools/flash", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", required=True, action="append", help="the board's serial port, "
                   "e.g. /dev/ttyUSB0; with --batch give it once per board on the bench")
    p.add_argument("--device", help="the device id, e.g. fill-0001 (not with --batch)")
    p.add_argument("--inventory", required=True, help="the fleet inventory (TOML) the gateway "
                   "loads; created if missing")
    p.add_argument("--batch", action="store_true", help="provision every planned device of the "
                   "inventory (listed without a key_file), one board per port in turn")
    p.add_argument("--count", type=int, help="with --batch: first add N planned devices "
                   "named KIND-NNNN (needs --kind)")
    p.add_argument("--kind", choices=inventory.KINDS, help="sensor kind of a new device "
                   "(default fill); with --batch, only planned devices of this kind")
    p.add_argument("--addr", type=address, help="6 hex digits for a new device (default: the "
                   "lowest free address)")
    p.add_argument("--gateway", type=gateway_address, metavar="HOST:PORT",
                   help="where the node sends over Wi-Fi (UDP); needed with the wifi transport")
    p.add_argument("--transports", type=transports, default=["wifi"], metavar="LIST",
                   help="the links in the order the node tries them: wifi (default), lora, "
                   "lora,wifi or wifi,lora")
    p.add_argument("--lora-sf", type=int, choices=range(7, 13), default=9, metavar="7..12",
                   help="LoRa spreading factor (default 9)")
    p.add_argument("--lora-chip", choices=("sx127x", "sx126x"), default="sx127x",
                   help="the board's LoRa transceiver: sx127x (an RFM95W as the kits wire "
                   "it, the default) or sx126x (an SX1262 as a Heltec WiFi LoRa 32 V3 wires it)")
    p.add_argument("--wifi-ssid", default="city", help="the Wi-Fi network (default city); the "
                   "password comes from $CITYEDGE_WIFI_PASSWORD")
    fw = p.add_mutually_exclusive_group(required=True)
    fw.add_argument("--firmware", type=Path, metavar="IMAGE.bin", help="the MicroPython image "
                    "to erase and write first")
    fw.add_argument("--no-firmware", action="store_true", help="keep the MicroPython on the "
                    "board")
    p.add_argument("--rekey", action="store_true", help="give the device a new key (board and "
                   "inventory together)")
    p.add_argument("--reprovision", action="store_true", help="put a device that is already "
                   "in the inventory on a board that does not hold it (a replacement board)")
    p.add_argument("--dry-run", action="store_true", help="print every step and command; touch "
                   "nothing")
    p.add_argument("--watch-timeout", type=float, default=WATCH_TIMEOUT_S,
                   help="seconds to wait for the first cycle (default %d)" % WATCH_TIMEOUT_S)
    p.add_argument("--step-timeout", type=float, help="seconds a copy to the board may take "
                   "before the board counts as gone (default: 20 s plus 1 s per 4 KB)")
    args = p.parse_args(argv)
    if "wifi" in args.transports and not args.gateway:
        p.error("the wifi transport needs --gateway HOST:PORT")
    if args.batch:
        if args.device or args.addr is not None or args.rekey:
            p.error("--batch takes its devices from the inventory: no --device, --addr or "
                    "--rekey with it")
    else:
        if not args.device:
            p.error("give --device ID (or --batch)")
        if len(args.port) > 1 or args.count:
            p.error("several --port and --count go with --batch")
    return args


def say(text):
    print(text, flush=True)


class Progress:
    """Progress bars for the long steps, drawn on a terminal only: a log or a pipe gets the
    step lines and the summary, not a stream of redraws."""

    def __init__(self, enabled):
        self.enabled = enabled

    @contextlib.contextmanager
    def task(self, text, total=None):
        """Yields advance(n=0, completed=None); total None is a spinner with the time taken."""
        if not self.enabled:
            yield lambda n=0, completed=None: None
            return
        from rich import progress as rp
        columns = [rp.SpinnerColumn(), rp.TextColumn("   {task.description}"), rp.BarColumn(),
                   rp.TaskProgressColumn() if total else rp.TextColumn(""),
                   rp.TimeElapsedColumn()]
        with rp.Progress(*columns, transient=True) as bar:
            task = bar.add_task(text, total=total)

            def advance(n=0, completed=None):
                bar.update(task, advance=n, completed=completed)
            yield advance


def esptool_commands(args, port):
    base = [sys.executable, "-m", "esptool", "--port", port, "--chip", "esp32"]
    return [base + ["erase_flash"], base + ["write_flash", FIRMWARE_ADDR, str(args.firmware)]]


def write_firmware(args, port, progress):
    if not args.firmware.is_file():
        raise FlashError("firmware image %s not found" % args.firmware)
    for cmd in esptool_commands(args, port):
        say("  $ " + shlex.join(cmd))
        with progress.task(cmd[-1] if cmd[-1] == "erase_flash" else "write_flash",
                           total=100) as advance:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            said = b""
            while True:
                chunk = proc.stdout.read1(4096)
                if not chunk:
                    break
                said = (said + chunk)[-4000:]
                percent = re.findall(rb"(\d+(?:\.\d+)?) ?%", chunk)
                if percent:
                    advance(completed=float(percent[-1]))
            proc.wait()
        if proc.returncode != 0:
            said = " ".join(said.decode("utf-8", "replace").split())
            found = re.search(r"(?:fatal error occurred|Error):? (.*)", said)
            reason = found.group(1) if found else said[-200:]
            raise FlashError("esptool could not flash an ESP32 on %s (wrong chip, or not in "
                             "download mode?): %s" % (port, reason.strip()))


def dry_run(args):
    if args.batch:
        if args.count or not os.path.exists(args.inventory):
            say("dry run: --batch %s" % ("would add %d planned %s device(s) first"
                                          % (args.count, args.kind) if args.count
                                          else "finds no inventory at %s" % args.inventory))
            return
        todo = pending_devices(args)
        say("dry run: --batch would provision %d planned device(s) on %s, in this order: %s"
            % (len(todo), ", ".join(args.port), ", ".join(todo) or "(none)"))
        if not todo:
            return
        say("the steps for the first one:")
        device_id = todo[0]
    else:
        device_id = args.device
    port = args.port[0]
    dev, change = plan_device(args, device_id)
    say("dry run: nothing is written, no port is opened")
    if args.firmware:
        say("1. write MicroPython %s:" % args.firmware)
        for cmd in esptool_commands(args, port):
            say("  $ " + shlex.join(cmd))
    else:
        say("1. firmware: skipped (--no-firmware)")
    say("2. check the board's .mpy version (mpy-cross writes v%d.%d):" % mpy_cross_version())
    say("  $ " + shlex.join(mpremote_cmd(port, "exec", "<print sys.implementation._mpy, the "
                                         "free flash and the sha256 of every deployed file>")))
    say("   compile firmware/ and protocol/: %s -o lib/PKG/MOD.mpy -s MOD.py MOD.py"
        % mpybuild._tool("mpy-cross"))
    say("3. copy the files whose sha256 differs, then check every hash again:")
    say("  $ " + shlex.join(mpremote_cmd(port, "fs", "cp", "BUILD/FILE", ":FILE", "+", "...")))
    key_note = {"add": "a new key (generated here, never shown)",
                "provision": "a new key (generated here, never shown)",
                "rekey": "a new key (--rekey; key_epoch %d -> %d)" % (dev.key_epoch,
                                                                     dev.key_epoch + 1),
                None: "the key in %s" % (dev.key_file_as_written or dev.key_file)}[change]
    links = ", ".join("Wi-Fi to %s:%d" % args.gateway if t == "wifi" else
                      "LoRa SF%d" % args.lora_sf for t in args.transports)
    say("4. write config.json (%s, %s, address %s, %s) and device.key: %s"
        % (dev.id, dev.kind, dev.addr_hex, links, key_note))
    say("5. inventory %s: %s" % (args.inventory, {
        "add": "add %s (key file %s, mode 0600)" % (dev.id, dev.key_file_as_written),
        "provision": "record the key of planned %s (key file keys/%s.key, mode 0600)"
                     % (dev.id, dev.id),
        "rekey": "re-key %s" % dev.id, None: "%s already recorded, unchanged" % dev.id}[change]))
    say("6. reset the board (machine.reset() in the raw REPL on %s) and watch its console for "
        "'node: cycle done'" % port)


def provision(args, port, device_id, progress):
    """Steps 1-6 for one board; returns its summary line."""
    t0 = time.monotonic()
    dev, change = plan_device(args, device_id)  # refuses duplicates before touching the port
    check_port(port)
    if args.firmware:
        say("1. writing MicroPython %s with esptool" % args.firmware)
        write_firmware(args, port, progress)
    else:
        say("1. firmware: skipped (--no-firmware)")
    say("2. checking the board and compiling")
    mpy, before, _, board_cfg_id, free = probe(port)
    want = mpy_cross_version()
    have = board_mpy_version(mpy)
    if have != want:
        raise FlashError("version mismatch: the board's MicroPython reads .mpy v%d.%d, this "
                         "mpy-cross writes v%d.%d: flash a matching MicroPython (--firmware) "
                         "or install the matching mpy-cross" % (have + want))
    if board_cfg_id == "?" and not args.reprovision:
        raise FlashError("the board's config.json is unreadable (an interrupted first run?): "
                         "give --reprovision to put %s on this board" % dev.id)
    if change in (None, "rekey") and board_cfg_id != dev.id and not args.reprovision:
        held = ("holds %s" % board_cfg_id) if board_cfg_id else "holds no device"
        raise FlashError("duplicate device id %s: it is already in the inventory (address %s) "
                         "and this board %s; pick a new id, or give --reprovision to put %s "
                         "on this board" % (dev.id, dev.addr_hex, held, dev.id))
    if board_cfg_id not in (None, "?", dev.id) and not args.reprovision:
        raise FlashError("this board is provisioned as %s, not %s: give --reprovision to "
                         "replace it" % (board_cfg_id, dev.id))
    # The inventory changes only once the board holds the new key: an interrupted run never
    # leaves the gateway expecting a key that no board has.
    key = secrets.token_bytes(16) if change else current_key(args, dev)
    with tempfile.TemporaryDirectory(prefix="cityedge-flash-") as tmp:
        os.chmod(tmp, 0o700)
        files = build(tmp)
        cfg = Path(tmp) / "config.json"
        cfg.write_text(json.dumps(node_config(dev, args), indent=1, sort_keys=True) + "\n")
        files["/config.json"] = cfg
        key_path = Path(tmp) / "device.key"
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key.hex())
        files["/device.key"] = key_path
        changed = {r: p for r, p in files.items() if differs(before, r, p)}
        stale = [r for r in before if r.startswith("/lib/") and r not in files]
        written = sum(p.stat().st_size for p in changed.values())
        if changed or stale:
            check_room(port, free, changed, before)
            say("3-4. copying %d file(s), %d bytes%s (%d unchanged)"
                % (len(changed), written, ", removing %d stale" % len(stale) if stale else "",
                   len(files) - len(changed)))
            copy(args, port, changed, stale, before, progress)
            _, after, _, _, _ = probe(port)
            bad = sorted(r for r, p in files.items() if differs(after, r, p))
            bad += sorted(r for r in after if r.startswith("/lib/") and r not in files)
            if bad:
                raise FlashError("verification failed: %d file(s) differ on the board after "
                                 "the copy (%s): run again" % (len(bad), ", ".join(bad[:3])))
        else:
            say("3-4. board up to date: %d file(s) unchanged, nothing written" % len(files))
    if change:
        say("5. %s %s in %s" % ({"add": "adding", "provision": "recording the key of",
                                 "rekey": "re-keying"}[change], dev.id, args.inventory))
        dev = record(args, dev, change, key)
    say("6. resetting the board and waiting for its first cycle")
    line = watch_first_cycle(port, args.watch_timeout, progress)
    queued = re.search(r"(\d+) frame\(s\) queued", line)
    return "%s: %s %s at %s, key %s (epoch %d), %d file(s) / %d bytes written, first cycle " \
        "done%s, %.1f s" % ("ok" if not queued or queued.group(1) == "0" else "warning", dev.id,
                            dev.kind, dev.addr_hex, dev.key_id, dev.key_epoch, len(changed),
                            written, "" if not queued or queued.group(1) == "0"
                            else " but %s frame(s) still queued (gateway not answering?)"
                            % queued.group(1), time.monotonic() - t0)


def check_room(port, free, changed, before):
    """Refuse a copy that cannot fit the board's flash, before anything is written. Files
    are replaced one by one, so the largest one needs its full size free at some moment."""
    if free is None:
        return
    grow = sum(p.stat().st_size for p in changed.values()) - \
        sum(before[r][1] for r in changed if r in before)
    if grow > free:
        raise FlashError("disk full: the board's flash at %s has %d bytes free, the files need "
                         "%d more: erase it with --firmware IMAGE.bin, or remove old files "
                         "(mpremote connect %s fs ls)" % (port, free, grow, port))


def copy(args, port, changed, stale, before, progress):
    """One mpremote command for the whole copy, its `cp` lines driving the progress bar."""
    command = deploy_command(port, changed, stale, dirs_of(changed))
    if "/device.key" in changed and "/device.key" in before:
        say("   new key: clearing the board's downlink counter, RTC state and the "
            "frames it queued under the old key (the gateway starts afresh too)")
        command += ["+", "exec", FORGET_OLD_KEY]
    sizes = {":" + r: p.stat().st_size for r, p in changed.items()}
    # A board reset halfway through leaves mpremote waiting for an answer that never comes:
    # allow what the copy needs (at >= 4 KB/s), then give up.
    timeout = args.step_timeout or 20 + sum(sizes.values()) / 4000
    with progress.task("copying to the board", total=sum(sizes.values())) as advance:
        def on_line(line):
            parts = line.split()
            if len(parts) == 3 and parts[0] == "cp":
                advance(sizes.get(parts[2], 0))
        run_mpremote(port, *command, timeout=timeout, on_line=on_line)


def dirs_of(changed):
    dirs = {str(Path(r).parent) for r in changed} - {"/"}
    for d in list(dirs):
        while d not in ("/", ""):
            dirs.add(d)
            d = str(Path(d).parent)
    return dirs


def pending_devices(args):
    """The planned devices of the inventory (of --kind if given), after adding --count new
    ones named KIND-NNNN."""
    path = args.inventory
    if args.count:
        if not args.kind:
            raise FlashError("--count needs --kind: the kind of the new devices")
        inv = inventory.load(path, read_keys=False) if os.path.exists(path) else \
            inventory.Inventory(path=path)
        from hil_tests.virtual.kits import kit
        k = kit(args.kind)
        settings = {n: v for n, v in k.SETTINGS.items() if n in inventory.SETTINGS[args.kind]}
        taken = {d.id for d in inv.devices}
        n = 0
        for _ in range(args.count):
            n += 1
            while "%s-%04d" % (args.kind, n) in taken:
                n += 1
            try:
                inventory.add(path, id="%s-%04d" % (args.kind, n), kind=args.kind,
                              planned=True, interval_s=k.INTERVAL, settings=settings)
            except ConfigError as e:
                raise FlashError("inventory: %s" % e) from None
    if not os.path.exists(path):
        raise FlashError("--batch: %s not found: list the devices there first (see "
                         "tools/README.md), or give --count N --kind KIND" % path)
    try:
        inv = inventory.load(path, read_keys=False)
    except ConfigError as e:
        raise FlashError("inventory: %s" % e) from None
    return [d.id for d in inv.devices if d.planned and (not args.kind or d.kind == args.kind)]


def batch(args, progress):
    """Provision every planned device of the inventory: one board per port, port after port;
    when every port has had its board, ask for the next ones (on a terminal) or stop."""
    todo = pending_devices(args)
    if not todo:
        say("--batch: no planned device (without a key) in %s%s: nothing to do"
            % (args.inventory, " of kind %s" % args.kind if args.kind else ""))
        return 0
    say("batch: %d device(s) to provision on %d port(s)" % (len(todo), len(args.port)))
    done, failed, t0 = [], [], time.monotonic()
    while todo:
        for port in args.port:
            if not todo:
                break
            device_id = todo.pop(0)
            say("--- %s on %s" % (device_id, port))
            try:
                done.append(provision(args, port, device_id, progress))
                say(done[-1])
            except FlashError as e:
                failed.append((device_id, port, str(e)))
                say("FAILED: %s on %s: %s" % (device_id, port, e))
        if todo:
            if not sys.stdin.isatty():
                say("%d device(s) still planned: put the next board(s) on %s and run again"
                    % (len(todo), ", ".join(args.port)))
                break
            try:
                input("put the next board(s) on %s, then press Enter (Ctrl-C stops) "
                      % ", ".join(args.port))
            except (EOFError, KeyboardInterrupt):
                say("")
                break
    took = time.monotonic() - t0
    say("batch: %d provisioned, %d failed, %.1f s (%.1f s a board)"
        % (len(done), len(failed), took, took / max(1, len(done) + len(failed))))
    for device_id, port, reason in failed:
        say("  failed: %s on %s: %s" % (device_id, port, reason))
    return 1 if failed else 0


def main(argv=None):
    args = parse(argv)
    progress = Progress(sys.stdout.isatty())
    try:
        if args.dry_run:
            dry_run(args)
            return 0
        if args.batch:
            return batch(args, progress)
        say(provision(args, args.port[0], args.device, progress))
        return 0
    except FlashError as e:
        print("tools/flash: %s" % e, file=sys.stderr)
        return 1
    except ConfigError as e:
        print("tools/flash: inventory: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
