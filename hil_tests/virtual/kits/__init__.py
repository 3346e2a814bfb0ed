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
                lora=None, **changes):
    """The config.json of a node of this kind talking Wi-Fi to a gateway on UDP; with
    `lora` (True, or a dict of lora settings) it sends over LoRa first, with an RFM95W on
    LORA_PINS, and falls back to Wi-Fi."""
    k = kit(kind)
    cfg = {"device_id": device_id or "%s-%06x" % (kind, addr), "addr": "%06x" % addr,
           "kind": kind, "interval_s": k.INTERVAL, "status_every": 6, "wdt_ms": 20000,
           "power": k.POWER,
           "wifi": {"ssid": "city", "gateway": gateway_host, "port": gateway_port,
                    "rx_window_ms": 300},
           "sensors": dict(k.SENSORS), "settings": dict(k.SETTINGS)}
    if lora:
        cfg["transports"] = ["lora", "wifi"]
        cfg["lora"] = dict(LORA_PINS, **(lora if isinstance(lora, dict) else {}))
    cfg.update(changes)
    return cfg


# An RFM95W on the ESP32's SPI bus 1, on pins no kit's sensors use (the TTGO LoRa32 wiring
# the firmware defaults to shares GPIO 5 and 18 with the fill kit's rangefinder).
LORA_PINS = {"spi": 1, "sck": 14, "mosi": 13, "miso": 12, "cs": 15, "reset": 4, "dio0": 26}


def lora_models(air, *, position=(0.0, 0.0), name=None):
    """The radio a LoRa node carries, on the shared `air`: [SX127x, its NSS, DIO0 and NRESET
    pins]. Add them to the kit's models."""
    from hil_tests.virtual.models.sx127x import SX127x
    radio = SX127x(bus="spi%d" % LORA_PINS["spi"], cs=LORA_PINS["cs"], dio0=LORA_PINS["dio0"],
                   reset=LORA_PINS["reset"], air=air, name=name, position=position)
    return [radio, *radio.pins()]
