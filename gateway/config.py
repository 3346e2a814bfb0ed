# The gateway's settings: frozen dataclasses read from a TOML file (or embedded defaults),
# validated with errors that name the file, the line and the field. gateway/README.md lists
# every option.
import dataclasses
import os
from dataclasses import dataclass, field

from gateway import tomlcheck
from protocol import airtime


@dataclass(frozen=True)
class UdpIngressConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 4700  # 1700 is left to the Semtech packet forwarder (LoRa ingress)
    queue_max: int = 10000  # uplinks waiting for the pipeline before new ones are dropped


@dataclass(frozen=True)
class SemtechIngressConfig:
    """Semtech UDP packet forwarders (concentrator gateways) feeding this gateway."""
    enabled: bool = False
    host: str = "127.0.0.1"  # 0.0.0.0 for packet forwarders on the LAN
    port: int = 1700
    gateway_euis: tuple = ()  # the forwarders allowed, 16 hex digits each (lower case)
    rx_delay_s: float = 1.0  # the nodes' receive delay (firmware lora rx_delay_ms)
    rx2_freq_hz: int = 869525000  # the nodes' RX2 channel (firmware lora rx2_freq_hz); 0: none
    tx_power_dbm: int = 14


@dataclass(frozen=True)
class SerialIngressConfig:
    """An ESP32 running the firmware's LoRa bridge on a USB serial port."""
    enabled: bool = False
    port: str = ""  # e.g. /dev/ttyUSB0
    baud: int = 115200
    rx_delay_s: float = 1.0
    rx2_freq_hz: int = 869525000
    tx_power_dbm: int = 14


@dataclass(frozen=True)
class SpiIngressConfig:
    """An SX127x (or SX1262) radio on the Raspberry Pi's SPI bus (a LoRa HAT), single
    channel."""
    enabled: bool = False
    bus: int = 0  # /dev/spidev<bus>.<device>
    device: int = 0
    speed_hz: int = 1000000
    gpio_chip: str = "/dev/gpiochip0"
    cs_pin: int = -1  # -1: the kernel's CE<device> line is NSS; else the GPIO line wired to it
    reset_pin: int = 17  # BCM line numbers (the common RFM95W HAT wiring)
    dio0_pin: int = 4
    chip: str = "sx127x"  # or "sx126x": an SX1262 HAT, with the four fields below
    busy_pin: int = -1  # its BUSY line and DIO1 (its interrupt), needed with sx126x
    dio1_pin: int = -1
    tcxo_mv: int = 0  # its TCXO's supply from DIO3, in mV; 0: a crystal
    dio2_rf_switch: bool = True  # the chip drives the antenna switch from DIO2
    frequency_hz: int = 868100000
    sf: int = 9
    bw_khz: float = 125
    cr: int = 1  # 1..4: 4/5..4/8
    preamble: int = 8
    tx_power_dbm: int = 14
    rx_delay_s: float = 1.0
    rx2_freq_hz: int = 869525000


@dataclass(frozen=True)
class StoreConfig:
    path: str = "var/gateway.sqlite"
    synchronous: str = "full"  # "full": a receipt is only sent for what survives power loss
    batch_max: int = 256  # uplinks per transaction
    retention_days: float = 7.0  # forwarded readings kept for the API and status page
    max_mb: float = 1024.0  # disk quota; new uplinks are refused (no receipt) at the quota
    alarm_pct: float = 80.0  # raise the quota alarm at this share of max_mb


@dataclass(frozen=True)
class HttpConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""  # default: "cityedge-<gateway id>"
    username: str = ""
    password: str = ""
    password_file: str = ""
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    topic_prefix: str = "cityedge/v1"
    format: str = "json"  # or "senml"
    keepalive_s: int = 60
    session_expiry_s: int = 86400
    batch: int = 200  # records per publish; up to 4 batches in flight
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0


@dataclass(frozen=True)
class NgsiLdConfig:
    enabled: bool = False
    url: str = ""  # the context broker's base URL, e.g. http://orion:1026
    tenant: str = ""  # NGSILD-Tenant header when set
    context: str = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
    co2_entity: str = "IndoorEnvironmentObserved"  # or "AirQualityObserved"
    batch_max_entities: int = 100
    batch_max_bytes: int = 256 * 1024
    timeout_s: float = 10.0
    backoff_min_s: float = 1.0
    backoff_max_s: float = 60.0


@dataclass(frozen=True)
class CommandsConfig:
    max_attempts: int = 3  # sends without an ack before the command fails
    ttl_s: float = 7 * 86400.0  # a command not delivered by then expires


@dataclass(frozen=True)
class AlarmsConfig:
    silent_factor: float = 2.5  # silent: no uplink within interval_s x this
    battery_low_mv: int = 3300


@dataclass(frozen=True)
class Config:
    path: str | None = None  # the file read, None for the embedded defaults
    gateway_id: str = "gateway"
    inventory: str = "inventory.toml"
    inventory_required: bool = False  # true when the config names it: then it must exist
    log_format: str = "text"
    log_level: str = "info"
    udp: UdpIngressConfig = field(default_factory=UdpIngressConfig)
    semtech: SemtechIngressConfig = field(default_factory=SemtechIngressConfig)
    serial: SerialIngressConfig = field(default_factory=SerialIngressConfig)
    spi: SpiIngressConfig = field(default_factory=SpiIngressConfig)
    # Copies of one radio frame from several receivers are collected this long, and the
    # one with the best SNR (then RSSI) is stored and answered (gateway/radio_dedup.py).
    dedup_window_s: float = 0.2
    store: StoreConfig = field(default_factory=StoreConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    ngsi_ld: NgsiLdConfig = field(default_factory=NgsiLdConfig)
    commands: CommandsConfig = field(default_factory=CommandsConfig)
    alarms: AlarmsConfig = field(default_factory=AlarmsConfig)


def defaults():
    """The embedded defaults: UDP on loopback, SQLite under ./var/, HTTP API on 8080."""
    return Config()


_PORT = dict(check=lambda v: 1 <= v <= 65535, expect="a port 1..65535")
# A listening port may be 0: the system picks a free one (logged at start).
_LISTEN_PORT = dict(check=lambda v: 0 <= v <= 65535, expect="a port 0..65535")
_POSITIVE = dict(check=lambda v: v > 0, expect="a number > 0")
_POS_INT = dict(check=lambda v: v > 0, expect="an integer > 0")
_NUM = (int, float)


def _rel(base, path):
    """Paths in a config file are relative to the file's folder."""
    return path if not path or os.path.isabs(path) else os.path.join(base, path)


def load(path):
    """Read and validate a gateway.toml; ConfigError on any problem."""
    text, data = tomlcheck.load(path)
    base = os.path.dirname(os.path.abspath(path))
    top = tomlcheck.Table(path, text, data)

    g = top.sub("gateway")
    gateway_id = g.get("id", str, "gateway", check=_ID_OK, expect="letters, digits, '-', '_'")
    inventory = g.get("inventory", str, None)
    log_format = g.choice("log_format", ("text", "json"), "text")
    log_level = g.choice("log_level", ("debug", "info", "warning", "error"), "info")
    g.done()

    ingress = top.sub("ingress")
    t = ingress.sub("udp")
    udp = UdpIngressConfig(
        enabled=t.get("enabled", bool, True), host=t.get("host", str, "127.0.0.1"),
        port=t.get("port", int, 4700, **_LISTEN_PORT), queue_max=t.get("queue_max", int, 10000, **_POS_INT))
    t.done()
    semtech, serial, spi = _radio_ingresses(ingress)
    dedup_window_s = ingress.get("dedup_window_s", _NUM, 0.2, check=lambda v: 0 <= v <= 0.5,
                                 expect="seconds 0..0.5 (the reply must still reach RX1)")
    ingress.done()

    t = top.sub("store")
    store = StoreConfig(
        path=_rel(base, t.get("path", str, "var/gateway.sqlite")),
        synchronous=t.choice("synchronous", ("full", "normal"), "full"),
        batch_max=t.get("batch_max", int, 256, **_POS_INT),
        retention_days=t.get("retention_days", _NUM, 7.0, **_POSITIVE),
        max_mb=t.get("max_mb", _NUM, 1024.0, **_POSITIVE),
        alarm_pct=t.get("alarm_pct", _NUM, 80.0, check=lambda v: 0 < v <= 100,
                        expect="a percentage 0..100"))
    t.done()

    t = top.sub("http")
    http = HttpConfig(enabled=t.get("enabled", bool, True), host=t.get("host", str, "127.0.0.1"),
                      port=t.get("port", int, 8080, **_LISTEN_PORT))
    t.done()

    t = top.sub("mqtt")
    mqtt = MqttConfig(
        enabled=t.get("enabled", bool, False), host=t.get("host", str, "127.0.0.1"),
        port=t.get("port", int, 1883, **_PORT), client_id=t.get("client_id", str, ""),
        username=t.get("username", str, ""), password=t.get("password", str, ""),
        password_file=_rel(base, t.get("password_file", str, "")),
        tls=t.get("tls", bool, False), ca_file=_rel(base, t.get("ca_file", str, "")),
        cert_file=_rel(base, t.get("cert_file", str, "")),
        key_file=_rel(base, t.get("key_file", str, "")),
        topic_prefix=t.get("topic_prefix", str, "cityedge/v1",
                           check=lambda v: v and not set(v) & set("#+") and not v.endswith("/"),
                           expect="a topic without wildcards or a trailing '/'"),
        format=t.choice("format", ("json", "senml"), "json"),
        keepalive_s=t.get("keepalive_s", int, 60, **_POS_INT),
        session_expiry_s=t.get("session_expiry_s", int, 86400,
                               check=lambda v: v >= 0, expect="an integer >= 0"),
        batch=t.get("batch", int, 200, check=lambda v: 1 <= v <= 10000, expect="1..10000"),
        backoff_min_s=t.get("backoff_min_s", _NUM, 0.5, **_POSITIVE),
        backoff_max_s=t.get("backoff_max_s", _NUM, 30.0, **_POSITIVE))
    if mqtt.password and mqtt.password_file:
        raise t.error("password", "give password or password_file, not both")
    t.done()

    t = top.sub("ngsi_ld")
    ngsi = NgsiLdConfig(
        enabled=t.get("enabled", bool, False),
        url=t.get("url", str, "", check=lambda v: v.startswith(("http://", "https://")),
                  expect="an http:// or https:// URL"),
        tenant=t.get("tenant", str, ""),
        context=t.get("context", str, NgsiLdConfig.context),
        co2_entity=t.choice("co2_entity", ("IndoorEnvironmentObserved", "AirQualityObserved"),
                            "IndoorEnvironmentObserved"),
        batch_max_entities=t.get("batch_max_entities", int, 100, **_POS_INT),
        batch_max_bytes=t.get("batch_max_bytes", int, 256 * 1024,
                              check=lambda v: v >= 1024, expect="an integer >= 1024"),
        timeout_s=t.get("timeout_s", _NUM, 10.0, **_POSITIVE),
        backoff_min_s=t.get("backoff_min_s", _NUM, 1.0, **_POSITIVE),
        backoff_max_s=t.get("backoff_max_s", _NUM, 60.0, **_POSITIVE))
    if ngsi.enabled and not ngsi.url:
        raise t.error(None, "missing required field 'url' (ngsi_ld is enabled)")
    t.done()

    t = top.sub("commands")
    commands = CommandsConfig(max_attempts=t.get("max_attempts", int, 3, **_POS_INT),
                              ttl_s=t.get("ttl_s", _NUM, CommandsConfig.ttl_s, **_POSITIVE))
    t.done()

    t = top.sub("alarms")
    alarms = AlarmsConfig(silent_factor=t.get("silent_factor", _NUM, 2.5, **_POSITIVE),
                          battery_low_mv=t.get("battery_low_mv", int, 3300, **_POS_INT))
    t.done()
    top.done()

    return Config(path=os.path.abspath(path), gateway_id=gateway_id,
                  inventory=_rel(base, inventory or "inventory.toml"),
                  inventory_required=inventory is not None, log_format=log_format,
                  log_level=log_level, udp=udp, semtech=semtech, serial=serial, spi=spi,
                  dedup_window_s=dedup_window_s, store=store, http=http, mqtt=mqtt,
                  ngsi_ld=ngsi, commands=commands, alarms=alarms)


_RX_DELAY = dict(check=lambda v: 0.1 <= v <= 15, expect="seconds 0.1..15")
_TX_POWER = dict(check=lambda v: 2 <= v <= 20, expect="dBm 2..20")


def _rx2(v):
    try:
        return v == 0 or bool(airtime.eu868_sub_band(v))
    except ValueError:
        return False


_RX2 = dict(check=_rx2, expect="0 (no RX2) or Hz in an EU868 sub-band open to general use")


def _eui(v):
    return isinstance(v, str) and len(v) == 16 and all(c in "0123456789abcdefABCDEF" for c in v)


def _radio_ingresses(ingress):
    """[ingress.semtech], [ingress.serial] and [ingress.spi]."""
    t = ingress.sub("semtech")
    semtech = SemtechIngressConfig(
        enabled=t.get("enabled", bool, False), host=t.get("host", str, "127.0.0.1"),
        port=t.get("port", int, 1700, **_LISTEN_PORT),
        gateway_euis=tuple(e.lower() for e in t.get(
            "gateway_euis", list, [], check=lambda v: all(_eui(e) for e in v),
            expect="an array of gateway EUIs, 16 hex digits each")),
        rx_delay_s=t.get("rx_delay_s", _NUM, 1.0, **_RX_DELAY),
        rx2_freq_hz=t.get("rx2_freq_hz", int, 869525000, **_RX2),
        tx_power_dbm=t.get("tx_power_dbm", int, 14, **_TX_POWER))
    if semtech.enabled and not semtech.gateway_euis:
        raise t.error(None, "missing required field 'gateway_euis' (ingress.semtech is "
                      "enabled): list the EUIs of the packet forwarders to accept")
    t.done()

    t = ingress.sub("serial")
    serial = SerialIngressConfig(
        enabled=t.get("enabled", bool, False), port=t.get("port", str, ""),
        baud=t.get("baud", int, 115200, check=lambda v: 1200 <= v <= 4000000,
                   expect="a baud rate 1200..4000000"),
        rx_delay_s=t.get("rx_delay_s", _NUM, 1.0, **_RX_DELAY),
        rx2_freq_hz=t.get("rx2_freq_hz", int, 869525000, **_RX2),
        tx_power_dbm=t.get("tx_power_dbm", int, 14, check=lambda v: 2 <= v <= 17,
                           expect="dBm 2..17 (the bridge's PA_BOOST range)"))
    if serial.enabled and not serial.port:
        raise t.error(None, "missing required field 'port' (ingress.serial is enabled)")
    t.done()

    t = ingress.sub("spi")
    small = dict(check=lambda v: 0 <= v <= 1023, expect="an integer 0..1023")
    spi = SpiIngressConfig(
        enabled=t.get("enabled", bool, False), bus=t.get("bus", int, 0, **small),
        device=t.get("device", int, 0, **small),
        speed_hz=t.get("speed_hz", int, 1000000, check=lambda v: 10000 <= v <= 10000000,
                       expect="Hz 10000..10000000 (the SX127x allows 10 MHz)"),
        gpio_chip=t.get("gpio_chip", str, "/dev/gpiochip0"),
        cs_pin=t.get("cs_pin", int, -1, check=lambda v: -1 <= v <= 1023,
                     expect="-1 (the kernel's chip select) or a GPIO line 0..1023"),
        reset_pin=t.get("reset_pin", int, 17, **small),
        dio0_pin=t.get("dio0_pin", int, 4, **small),
        chip=t.get("chip", str, "sx127x", check=lambda v: v in ("sx127x", "sx126x"),
                   expect="sx127x or sx126x"),
        busy_pin=t.get("busy_pin", int, -1, check=lambda v: -1 <= v <= 1023,
                       expect="a GPIO line 0..1023"),
        dio1_pin=t.get("dio1_pin", int, -1, check=lambda v: -1 <= v <= 1023,
                       expect="a GPIO line 0..1023"),
        tcxo_mv=t.get("tcxo_mv", int, 0, check=lambda v: v in _TCXO_MV,
                      expect="one of %s (0: a crystal)" % ", ".join(map(str, _TCXO_MV))),
        dio2_rf_switch=t.get("dio2_rf_switch", bool, True),
        frequency_hz=t.get("frequency_hz", int, 868100000,
                           check=lambda v: 137000000 <= v <= 1020000000,
                           expect="Hz 137000000..1020000000 (the SX1276's range)"),
        sf=t.get("sf", int, 9, check=lambda v: 7 <= v <= 12,
                 expect="7..12 (SF6 needs the implicit header our frames do not use)"),
        bw_khz=t.get("bw_khz", _NUM, 125, check=lambda v: v in _SX127X_BW,
                     expect="one of %s" % ", ".join("%g" % b for b in _SX127X_BW)),
        cr=t.get("cr", int, 1, check=lambda v: 1 <= v <= 4, expect="1..4 (4/5..4/8)"),
        preamble=t.get("preamble", int, 8, check=lambda v: 6 <= v <= 65535,
                       expect="symbols 6..65535"),
        tx_power_dbm=t.get("tx_power_dbm", int, 14, check=lambda v: 2 <= v <= 17,
                           expect="dBm 2..17 (PA_BOOST)"),
        rx_delay_s=t.get("rx_delay_s", _NUM, 1.0, **_RX_DELAY),
        rx2_freq_hz=t.get("rx2_freq_hz", int, 869525000, **_RX2))
    irq = [("dio0_pin", spi.dio0_pin)]
    if spi.chip == "sx126x":
        irq = [("busy_pin", spi.busy_pin), ("dio1_pin", spi.dio1_pin)]
        for name, line in irq:
            if spi.enabled and line < 0:
                raise t.error(name, "needed with chip = \"sx126x\": the GPIO line wired to it")
    pins = [("reset_pin", spi.reset_pin), ("cs_pin", spi.cs_pin)] + irq
    for i, (name, line) in enumerate(pins):
        for other, line2 in pins[i + 1:]:
            if line == line2 and line >= 0:
                raise t.error(other if t.has(other) else name,
                              "%s and %s are the same GPIO line" % (name, other))
    t.done()
    return semtech, serial, spi


_SX127X_BW = (7.8, 10.4, 15.6, 20.8, 31.25, 41.7, 62.5, 125, 250, 500)
_TCXO_MV = (0, 1600, 1700, 1800, 2200, 2400, 2700, 3000, 3300)  # SX126x SetDIO3AsTCXOCtrl


def _ID_OK(v):
    return bool(v) and all(c.isalnum() or c in "-_" for c in v)


def replace(config, **changes):
    """A copy with some sections or fields replaced (tests, CLI overrides)."""
    return dataclasses.replace(config, **changes)
