"""tools/frame: build a cityedge frame from JSON, or check and decode one.

  tools/frame encode --key HEX --addr 12ab34 --fcnt 7 --kind fill '{"level_pct": 40, ...}'
  tools/frame decode --key HEX 0912ab34...      (or the hex on stdin)

The JSON of `encode` is a reading for fill, parking, co2, luminaire, status, event and ack;
{"step_s": 600, "newest_age_s": 0, "kind": "fill", "readings": [...]} for batch; and
{"command_id": 1, "command": "set_interval", "arg": 600} for command (a downlink).
`decode` prints every field as JSON; without --newest or --fcnt it searches the counter's
high bits (below 2^24). Any failure (bad MIC, unknown kind, truncated, replay,
bad JSON...) is one line on stderr naming the reason, and exit status 1.
"""
import argparse
import json
import sys

from protocol import batch, command, counters, frame, schema
from protocol.errors import MICError, ProtocolError


class UsageError(Exception):
    pass


def read_key(args):
    if args.key_file:
        try:
            with open(args.key_file) as f:
                text = f.read().strip()
        except OSError as e:
            raise UsageError("cannot read key file: %s" % e) from None
    elif args.key:
        text = args.key
    else:
        raise UsageError("a device key is needed: --key HEX or --key-file FILE")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise UsageError("the key is not hex") from None
    if len(key) != 16:
        raise UsageError("the key must be 16 bytes (32 hex digits), got %d bytes" % len(key))
    return key


def encode(args):
    keys = frame.Keys(read_key(args))
    kind = schema.kind_number(args.kind)
    text = args.json if args.json is not None else sys.stdin.read()
    try:
        message = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError("the message is not valid JSON: %s" % e) from None
    if not isinstance(message, dict):
        raise UsageError("the message must be a JSON object")
    if kind == schema.BATCH:
        body = batch.encode(schema.kind_number(message.get("kind")), message.get("readings", []),
                            message.get("step_s"), message.get("newest_age_s", 0))
    elif kind == schema.COMMAND:
        body = command.encode(message.get("command_id"), message.get("command"),
                              message.get("arg"))
    else:
        body = schema.encode(kind, message)
    direction = frame.DOWN if kind == schema.COMMAND else frame.UP
    print(frame.seal(keys, kind, int(args.addr, 16), args.fcnt, body, direction).hex())


SEARCH_EPOCHS = 256


def search_counter(keys, data, low):
    """With no counter state, try the high bits 0..SEARCH_EPOCHS-1: a tool's convenience.
    A gateway never does this; it reconstructs the counter from its replay window."""
    for epoch in range(SEARCH_EPOCHS):
        try:
            return (epoch << 16) | low, frame.unseal(keys, data, (epoch << 16) | low)
        except MICError:
            continue
    raise MICError("frame: bad MIC with every counter below 2^24 ending in %d (wrong key, "
                   "or an altered frame)" % low)


def decode(args):
    keys = frame.Keys(read_key(args))
    text = args.frame if args.frame is not None else sys.stdin.read()
    try:
        data = bytes.fromhex(text.strip())
    except ValueError:
        raise UsageError("the frame is not hex") from None
    header = frame.parse_header(data)
    if args.fcnt is not None:
        fcnt = args.fcnt
        body = frame.unseal(keys, data, fcnt)
    elif args.newest is not None:
        fcnt = counters.full_counter(args.newest, header.fcnt_low)
        body = frame.unseal(keys, data, fcnt)
        # Everything up to --newest counts as accepted.
        counters.ReplayWindow(args.newest, (1 << counters.REPLAY_WINDOW) - 1).check(fcnt)
    else:
        fcnt, body = search_counter(keys, data, header.fcnt_low)
    out = {
        "version": header.version,
        "direction": "down" if header.direction else "up",
        "kind": schema.kind_name(header.kind),
        "addr": "%06x" % header.addr,
        "fcnt_low": header.fcnt_low,
        "fcnt": fcnt,
        "mic": data[-frame.MIC_LEN:].hex(),
        "length": len(data),
        "body_hex": body.hex(),
        "message": schema.decode(header.kind, body),
    }
    print(json.dumps(out, indent=2, ensure_ascii=False))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tools/frame", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encode", help="build a frame from JSON")
    enc.add_argument("--kind", required=True, help="fill, parking, co2, luminaire, status, "
                     "event, ack, batch or command")
    enc.add_argument("--addr", required=True, help="device address, 6 hex digits")
    enc.add_argument("--fcnt", required=True, type=int, help="32-bit frame counter")
    enc.add_argument("json", nargs="?", help="the message (default: read stdin)")
    dec = sub.add_parser("decode", help="check and decode a hex frame")
    state = dec.add_mutually_exclusive_group()
    state.add_argument("--newest", type=int, help="the newest counter already accepted from "
                       "this device: the counter is reconstructed from it and a frame at or "
                       "below it is a replay")
    state.add_argument("--fcnt", type=int, help="the frame's full 32-bit counter")
    dec.add_argument("frame", nargs="?", help="the frame in hex (default: read stdin)")
    for p in (enc, dec):
        keyarg = p.add_mutually_exclusive_group()
        keyarg.add_argument("--key", help="device key, 32 hex digits")
        keyarg.add_argument("--key-file", help="file holding the device key in hex")
    args = parser.parse_args(argv)
    try:
        (encode if args.command == "encode" else decode)(args)
    except (ProtocolError, UsageError) as e:
        print("tools/frame: %s" % e, file=sys.stderr)
        return 1
    except ValueError as e:  # e.g. an address that is not hex
        print("tools/frame: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
