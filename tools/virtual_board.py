"""tools/virtual-board: one virtual ESP32 whose console is a serial port (a pseudo-terminal),
so mpremote, a serial terminal or pytest-embedded attach to it as to a board on /dev/ttyUSB0.

  tools/virtual-board                   an empty flash: MicroPython and its REPL, nothing else
  tools/virtual-board --deploy          the firmware and a demo config: a fill-level node
                                        sending to the gateway on 127.0.0.1:4700 over Wi-Fi
  tools/virtual-board --flash DIR       whatever DIR holds (boot.py, main.py, lib/, ...)

It prints `port: /dev/pts/N`, the flash folder and the console log, then runs until Ctrl-C or
SIGTERM. The board runs freely: main.py runs at power-on, a deep sleep wakes it after the sleep
of virtual time (at once in real time), and the port stays the same through every reset.

  mpremote connect /dev/pts/N fs ls     mpremote connect /dev/pts/N repl
"""
import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path

from hil_tests.virtual.board import VirtualBoard, deploy
from hil_tests.virtual.kits import available, kit, node_config

DEMO_ADDR = 0x12AB34


def gateway_address(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError("expected HOST:PORT, e.g. 127.0.0.1:4700")
    return host, int(port)


def device_key(text):
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 16:
        raise argparse.ArgumentTypeError("expected 32 hex digits")
    return key


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tools/virtual-board", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flash", type=Path, help="the board's flash folder (default: a new "
                        "temporary one)")
    parser.add_argument("--kind", default="fill", choices=available(),
                        help="the sensor kind: its device models are attached (default fill)")
    parser.add_argument("--deploy", action="store_true", help="put the firmware (boot.py, "
                        "main.py, the packages as .mpy under lib/) and a demo config for "
                        "--kind on the flash first")
    parser.add_argument("--heap", default="96K", help="the firmware's heap, as on the chip "
                        "(default 96K)")
    parser.add_argument("--gateway", type=gateway_address, default=("127.0.0.1", 4700),
                        metavar="HOST:PORT", help="where --deploy's config sends (Wi-Fi, UDP; "
                        "default 127.0.0.1:4700)")
    parser.add_argument("--key", type=device_key, help="the device key for --deploy, 32 hex "
                        "digits (default: a random one, printed)")
    args = parser.parse_args(argv)

    flash = args.flash or Path(tempfile.mkdtemp(prefix="cityedge-board-")) / "flash"
    if args.deploy:
        key = args.key or os.urandom(16)
        host, port = args.gateway
        config = node_config(args.kind, addr=DEMO_ADDR, gateway_host=host, gateway_port=port)
        deploy(flash, config=config, key=key)
    board = VirtualBoard(flash, name="board", heap=args.heap, console="pty",
                         models=kit(args.kind).models())
    signal.signal(signal.SIGTERM, _terminate)
    board.start()
    print("port: %s" % board.port)
    print("flash: %s" % board.flash)
    print("console log: %s" % board.log_path)
    if args.deploy:
        print("device: %s, address %06x, key %s, gateway %s:%d"
              % (config["device_id"], DEMO_ADDR, key.hex(), host, port))
    sys.stdout.flush()
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
    return 0


def _terminate(signum, frame):
    raise SystemExit(0)  # through main()'s finally: the board is closed


if __name__ == "__main__":
    sys.exit(main())
