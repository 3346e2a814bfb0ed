# The device config written at provisioning (config.json) and the device key (device.key),
# validated so that a broken file gives one clear line naming the file and the field.
# Loaded once per boot; the runtime then lets this module go to free its heap.
import json

KINDS = ("fill", "parking", "co2", "luminaire")
TRANSPORTS = ("wifi", "lora")

DEFAULTS = {
    "interval_s": 600,
    "status_every": 6,
    "wdt_ms": 30000,
    "queue_max": 100,
    "transports": ["wifi"],
    "settings": {},
    "sensors": {},
    "battery": {"adc_pin": 35, "divider": 2.0},
    "currents_ma": {"awake": 40.0, "sensor": 15.0, "tx": 180.0, "rx": 100.0, "sleep": 0.01},
}
_RANGES = {"interval_s": (10, 86400), "status_every": (1, 1000), "wdt_ms": (1000, 120000),
           "queue_max": (1, 1000)}


class ConfigError(Exception):
    pass


def _fail(where, message):
    raise ConfigError("%s: %s" % (where, message))


def _read_json(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        _fail(path, "missing")
    try:
        value = json.loads(text)
    except ValueError:
        _fail(path, "not valid JSON")
    if not isinstance(value, dict):
        _fail(path, "must hold a JSON object")
    return value


def _wifi_defaults(wifi):
    for name, value in (("password", ""), ("port", 4700), ("rx_window_ms", 500),
                        ("connect_timeout_ms", 8000)):
        wifi.setdefault(name, value)
    return wifi


def read_key(path="device.key"):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        _fail(path, "missing")
    if len(text) != 32:
        _fail(path, "must hold 32 hex digits")
    try:
        return bytes.fromhex(text)
    except ValueError:
        _fail(path, "must hold 32 hex digits")


def load(path="config.json", key_path="device.key", overrides_path="overrides.json"):
    """The validated config as a dict, with the key under "key" (bytes) and the address
    under "addr" (int). Downlink overrides (interval...) from overrides.json win."""
    cfg = dict(DEFAULTS)
    cfg.update(_read_json(path))
    try:
        with open(overrides_path) as f:
            cfg.update(json.loads(f.read()))
    except (OSError, ValueError):
        pass  # no overrides yet, or a torn write: the provisioned config stands
    where = path
    device_id = cfg.get("device_id")
    if not isinstance(device_id, str) or not device_id:
        _fail(where, "field 'device_id' must be a non-empty string")
    addr = cfg.get("addr")
    try:
        cfg["addr"] = int(addr, 16)
        if not (isinstance(addr, str) and len(addr) == 6):
            raise ValueError
    except (TypeError, ValueError):
        _fail(where, "field 'addr' must be 6 hex digits")
    if cfg.get("kind") not in KINDS:
        _fail(where, "field 'kind' must be one of %s" % ", ".join(KINDS))
    for name, (lo, hi) in _RANGES.items():
        value = cfg[name]
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            _fail(where, "field '%s' must be an integer %d..%d" % (name, lo, hi))
    if cfg.get("power", "battery") not in ("battery", "mains"):
        _fail(where, "field 'power' must be battery or mains")
    transports = cfg["transports"]
    if (not isinstance(transports, list) or not transports
            or any(t not in TRANSPORTS for t in transports)):
        _fail(where, "field 'transports' must be a list of %s" % ", ".join(TRANSPORTS))
    if "wifi" in transports:
        wifi = cfg.get("wifi")
        if not isinstance(wifi, dict):
            _fail(where, "field 'wifi' is needed for the wifi transport")
        for name in ("ssid", "gateway"):
            if not isinstance(wifi.get(name), str):
                _fail(where, "field 'wifi.%s' must be a string" % name)
        _wifi_defaults(wifi)
    for name in ("settings", "sensors", "battery", "currents_ma"):
        if not isinstance(cfg[name], dict):
            _fail(where, "field '%s' must be an object" % name)
    cfg["key"] = read_key(key_path)
    return cfg


def load_for_status(path="config.json", key_path="device.key"):
    """What a status frame needs (key, address, transports) from a config that failed full
    validation; ConfigError if even that is broken."""
    cfg = dict(DEFAULTS)
    cfg.update(_read_json(path))
    addr = cfg.get("addr")
    try:
        cfg["addr"] = int(addr, 16)
    except (TypeError, ValueError):
        _fail(path, "field 'addr' must be 6 hex digits")
    wifi = cfg.get("wifi") if isinstance(cfg.get("wifi"), dict) else {}
    cfg["wifi"] = _wifi_defaults(wifi)
    cfg["transports"] = ["wifi"] if "ssid" in wifi and "gateway" in wifi else []
    cfg["wdt_ms"] = 30000
    cfg["key"] = read_key(key_path)
    return cfg
