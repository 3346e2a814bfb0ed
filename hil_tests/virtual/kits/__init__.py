"""A kit per sensor kind: the device models a board of that kind carries and the config it
is provisioned with. Tests, benches and tools/virtual-board build boards from these.

A kit module defines:
  POWER     "battery" (deep sleep between cycles) or "mains" (stays awake)
  SENSORS   the config's "sensors" (pins, buses, chip choice)
  SETTINGS  the config's "settings" (kind-specific)
  INTERVAL  the default interval_s
  models(**world) -> [Model, ...]   the chips, driven by the given scenario values
"""
import importlib

KINDS = ("fill", "parking", "co2", "luminaire")


def kit(kind):
    return importlib.import_module("hil_tests.virtual.kits." + kind)


def available():
    """The kinds whose kit exists in this tree."""
    found = []
    for kind in KINDS:
        try:
            kit(kind)
        except ModuleNotFoundError:
            continue
        found.append(kind)
    return found


def node_config(kind, *, addr, gateway_port, device_id=None, gateway_host="127.0.0.1",
                **changes):
    """The config.json of a node of this kind talking Wi-Fi to a gateway on UDP."""
    k = kit(kind)
    cfg = {"device_id": device_id or "%s-%06x" % (kind, addr), "addr": "%06x" % addr,
           "kind": kind, "interval_s": k.INTERVAL, "status_every": 6, "wdt_ms": 20000,
           "power": k.POWER,
           "wifi": {"ssid": "city", "gateway": gateway_host, "port": gateway_port,
                    "rx_window_ms": 300},
           "sensors": dict(k.SENSORS), "settings": dict(k.SETTINGS)}
    cfg.update(changes)
    return cfg
