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


_LORA_DEFAULTS = (
    # SPI bus and pins of an RFM95W on a typical ESP32 LoRa board (TTGO LoRa32 wiring).
    ("spi", 1), ("baudrate", 5000000), ("sck", 5), ("mosi", 27), ("miso", 19), ("cs", 18),
    ("reset", 14), ("dio0", 26),
    ("sf", 9), ("bw_hz", 125000), ("cr", 5), ("power_dbm", 14), ("preamble", 8),
    ("rx_delay_ms", 1000), ("rx_margin_ms", 20), ("rx_window_ms", 50), ("max_wait_ms", 30000),
    ("rx2_freq_hz", 869525000),  # the RX2 channel, in the 10 % sub-band; 0: no RX2
    ("sf_min", 7), ("sf_max", 12),  # the adaptive SF's range (lora.adr)
)
_LORA_RANGES = (
    ("spi", 0, 3), ("baudrate", 100000, 10000000), ("sck", 0, 48), ("mosi", 0, 48),
    ("miso", 0, 48), ("cs", 0, 48), ("reset", 0, 48), ("dio0", 0, 48), ("sf", 7, 12),
    ("cr", 5, 8), ("power_dbm", 2, 14), ("preamble", 6, 65535), ("rx_delay_ms", 100, 15000),
    ("rx_margin_ms", 0, 1000), ("rx_window_ms", 0, 5000), ("max_wait_ms", 0, 600000),
    ("sf_min", 7, 12), ("sf_max", 7, 12),
)


def lora_section(lora, where):
    """The validated `lora` section with its defaults, plus max_payload (the largest frame
    EU868 allows at the configured spreading factor) and bands (each channel's sub-band)."""
    from net import eu868
    if not isinstance(lora, dict):
        _fail(where, "field 'lora' must be an object")
    for name, value in _LORA_DEFAULTS:
        lora.setdefault(name, value)
    lora.setdefault("channels", list(eu868.DEFAULT_CHANNELS_HZ))
    for name, lo, hi in _LORA_RANGES:
        value = lora[name]
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            _fail(where, "field 'lora.%s' must be an integer %d..%d" % (name, lo, hi))
    lora.setdefault("adr", False)
    if not isinstance(lora["adr"], bool):
        _fail(where, "field 'lora.adr' must be true or false")
    if not lora["sf_min"] <= lora["sf"] <= lora["sf_max"]:
        _fail(where, "field 'lora.sf' must lie within sf_min..sf_max (%d..%d)"
              % (lora["sf_min"], lora["sf_max"]))
    if lora["bw_hz"] not in eu868.BANDWIDTHS_HZ:
        _fail(where, "field 'lora.bw_hz' must be one of %s"
              % ", ".join(str(b) for b in eu868.BANDWIDTHS_HZ))
    channels = lora["channels"]
    if not isinstance(channels, list) or not channels:
        _fail(where, "field 'lora.channels' must be a list of frequencies in Hz")
    for freq in channels:
        try:
            if not isinstance(freq, int) or isinstance(freq, bool):
                raise ValueError("%r is not an integer" % (freq,))
            eu868.check_channel(freq, lora["bw_hz"])
        except ValueError as e:
            _fail(where, "field 'lora.channels': %s" % e)
    rx2 = lora["rx2_freq_hz"]
    try:
        if rx2 != 0:
            if not isinstance(rx2, int) or isinstance(rx2, bool):
                raise ValueError("%r is not an integer" % (rx2,))
            eu868.check_channel(rx2, lora["bw_hz"])
    except ValueError as e:
        _fail(where, "field 'lora.rx2_freq_hz': %s (0: no RX2)" % e)
    try:
        lora["max_payload"] = eu868.max_payload(lora["sf"], lora["bw_hz"])
        if lora["adr"]:  # every SF it may choose is a data rate
            for sf in range(lora["sf_min"], lora["sf_max"] + 1):
                eu868.max_payload(sf, lora["bw_hz"])
    except ValueError as e:
        _fail(where, "field 'lora.sf': %s" % e)
    lora["bands"] = eu868.sub_bands(channels)
    return lora


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
    if "lora" in transports:
        lora_section(cfg.get("lora"), where)
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
    usable = []
    if "ssid" in wifi and "gateway" in wifi:
        usable.append("wifi")
    if isinstance(cfg.get("lora"), dict):
        try:
            lora_section(cfg["lora"], path)
            usable.append("lora")
        except ConfigError:
            pass  # no LoRa either: the status goes over Wi-Fi or nowhere
    wanted = cfg["transports"] if isinstance(cfg["transports"], list) else []
    cfg["transports"] = [t for t in wanted if t in usable] + [t for t in usable if t not in wanted]
    cfg["wdt_ms"] = 30000
    cfg["key"] = read_key(key_path)
    return cfg
