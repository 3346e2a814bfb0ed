# python -m gateway: run the gateway, check a config, edit the device inventory, queue a
# command. gateway/README.md describes every command.
import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from gateway import config as config_mod
from gateway import inventory, logs
from gateway.errors import ConfigError

log = logging.getLogger("gateway.main")


def _config(args):
    if args.config:
        return config_mod.load(args.config)
    return config_mod.defaults()


async def _run(config):
    from gateway.app import Gateway
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    async with Gateway(config) as gw:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, gw.registry.reload_if_changed)
        serving = asyncio.ensure_future(gw.serve_forever())
        stopping = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if serving in done:
            serving.result()  # a task that ended is a bug: let it show
        serving.cancel()
    logs.event(log, logging.INFO, "gateway_stopped", gateway=config.gateway_id)


def cmd_run(args):
    config = _config(args)
    logs.setup(config.log_format, config.log_level)
    asyncio.run(_run(config))
    return 0


def cmd_check(args):
    config = _config(args)
    from gateway.registry import Registry  # noqa: F401
    if os.path.exists(config.inventory) or config.inventory_required:
        inv = inventory.load(config.inventory)
        print("%s: ok, %d devices" % (config.inventory, len(inv.devices)))
    print("%s: ok" % (config.path or "embedded defaults"))
    return 0


def _inventory_path(args):
    if args.inventory:
        return args.inventory
    return _config(args).inventory


def cmd_devices(args):
    path = _inventory_path(args)
    if args.action == "list":
        inv = inventory.load(path, read_keys=False)
        print("%-20s %-10s %-6s %-8s %s" % ("id", "kind", "addr", "enabled", "interval_s"))
        for d in inv.devices:
            print("%-20s %-10s %-6s %-8s %d%s" % (d.id, d.kind, d.addr_hex, d.enabled,
                                                  d.interval_s, "  (planned: no key yet)"
                                                  if d.planned else ""))
    elif args.action == "add":
        fields = {"interval_s": args.interval_s}
        if args.lat is not None and args.lon is not None:
            fields["location"] = inventory.Location(args.lat, args.lon)
        if args.address:
            fields["address"] = args.address
        if args.settings:
            fields["settings"] = json.loads(args.settings)
        dev = inventory.add(path, id=args.id, kind=args.kind,
                            addr=int(args.addr, 16) if args.addr else None, **fields)
        print("added %s (%s) addr %s, key in %s" % (dev.id, dev.kind, dev.addr_hex, dev.key_file))
    elif args.action in ("disable", "enable"):
        inventory.set_enabled(path, args.id, args.action == "enable")
        print("%s %sd" % (args.id, args.action))
    elif args.action == "rekey":
        dev = inventory.rekey(path, args.id)
        print("%s: new key in %s (epoch %d); flash it to the device, counters start at 0"
              % (dev.id, dev.key_file, dev.key_epoch))
    return 0


def cmd_command(args):
    from protocol import command
    from gateway.store import Store
    config = _config(args)
    inv = inventory.load(config.inventory, read_keys=False)
    if not inv.by_id(args.device):
        raise ConfigError(config.inventory, None, "device %s" % args.device, "no such device")
    arg = json.loads(args.arg) if args.arg is not None else None
    command.encode(0, args.name, arg)  # refuses an unknown command or a bad argument
    store = Store(config.store.path, synchronous=config.store.synchronous)
    cmd = store.add_command(args.device, args.name, arg, config.commands.ttl_s)
    store.close()
    print(json.dumps(cmd))
    return 0


def parser():
    p = argparse.ArgumentParser(prog="cityedge-gateway", description="cityedge gateway")
    p.add_argument("--config", help="gateway.toml (default: embedded defaults)")
    sub = p.add_subparsers(dest="cmd")
    sub.add_parser("run", help="run the gateway (the default)")
    sub.add_parser("check-config", help="validate the config and the inventory, then exit")
    d = sub.add_parser("devices", help="list or edit the device inventory")
    d.add_argument("--inventory", help="inventory file (default: the config's)")
    dsub = d.add_subparsers(dest="action", required=True)
    dsub.add_parser("list")
    a = dsub.add_parser("add")
    a.add_argument("id")
    a.add_argument("kind", choices=inventory.KINDS)
    a.add_argument("--addr", help="6 hex digits (default: the lowest free address)")
    a.add_argument("--interval-s", type=int, default=600)
    a.add_argument("--lat", type=float)
    a.add_argument("--lon", type=float)
    a.add_argument("--address")
    a.add_argument("--settings", help='kind settings as JSON, e.g. \'{"depth_mm": 1200}\'')
    for action in ("disable", "enable", "rekey"):
        dsub.add_parser(action).add_argument("id")
    c = sub.add_parser("command", help="queue a command for a device")
    c.add_argument("device")
    c.add_argument("name", help="set_interval, set_thresholds, dim_override, set_profile, "
                   "recalibrate, forced_recalibration, reboot, set_status_every")
    c.add_argument("arg", nargs="?", help="the argument as JSON (e.g. 600 or [30, 120])")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    handler = {None: cmd_run, "run": cmd_run, "check-config": cmd_check,
               "devices": cmd_devices, "command": cmd_command}[args.cmd]
    try:
        return handler(args)
    except ConfigError as e:
        print("cityedge-gateway: %s" % e, file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:
        print("cityedge-gateway: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
