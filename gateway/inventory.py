# The fleet inventory: one TOML file that the gateway and tools/flash share. Each [[device]]
# names a device, its kind, its 24-bit address, the file holding its 128-bit key, where it
# is and its kind-specific settings. Loading validates everything and names file, line and
# field on error; key files readable by anyone but their owner are refused.
#
#   [[device]]
#   id = "fill-0001"
#   kind = "fill"                 # fill | parking | co2 | luminaire
#   addr = "12ab34"               # 6 hex digits, unique
#   key_file = "keys/fill-0001.key"   # relative to this file; 32 hex digits, mode 0600;
#                                 # absent: planned, not provisioned yet (tools/flash --batch)
#   location = { lat = 52.3731, lon = 4.8922 }
#   address = "Damrak 1, Amsterdam"
#   interval_s = 600              # expected uplink interval (silent-device alarm)
#   enabled = true
#   [device.settings]
#   depth_mm = 1200
import dataclasses
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass, field

from gateway import tomlcheck
from gateway.errors import ConfigError

KINDS = ("fill", "parking", "co2", "luminaire")

# Kind-specific settings: name -> (types, minimum, maximum, meaning).
_NUM = (int, float)
SETTINGS = {
    "fill": {"depth_mm": (int, 1, 10000, "container depth, sensor to bottom"),
             "offset_mm": (int, 0, 10000, "sensor to the container's rim"),
             "blind_mm": (int, 0, 10000, "closest distance the sensor can measure"),
             "full_pct": (_NUM, 1, 100, "level at which the container counts as full")},
    "parking": {"time_limit_min": (int, 1, 65535, "maximum stay before overstay"),
                "parking_site": (str, 1, 64, "id of the ParkingSite it belongs to (NGSI-LD)"),
                "category": (str, 1, 16, "onStreet or offStreet (NGSI-LD)")},
    "co2": {"high_ppm": (int, 400, 40000, "CO2 alarm threshold"),
            "low_ppm": (int, 0, 40000, "CO2 level that clears the alarm")},
    "luminaire": {"nominal_power_w": (_NUM, 0.1, 6553.5, "rated power at 100 %"),
                  "min_power_w": (_NUM, 0, 6553.5, "lowest plausible power when on"),
                  "max_power_w": (_NUM, 0.1, 6553.5, "highest plausible power")},
}


@dataclass(frozen=True)
class Location:
    lat: float
    lon: float


@dataclass(frozen=True)
class Device:
    id: str
    kind: str
    addr: int
    key_file: str  # absolute path; "" for a planned device that no board holds yet
    key: bytes = field(repr=False, default=b"")
    location: Location | None = None
    address: str = ""
    interval_s: int = 600
    enabled: bool = True
    key_epoch: int = 0  # how many times the device was re-keyed (part of its record keys)
    settings: dict = field(default_factory=dict, compare=False, hash=False)
    key_file_as_written: str = field(default="", compare=False)

    @property
    def planned(self):
        """Listed but not provisioned: no key yet, so the gateway cannot hear it."""
        return not self.key_file

    @property
    def addr_hex(self):
        return "%06x" % self.addr

    @property
    def record_prefix(self):
        """The device part of an idempotency key. A re-key starts the counter again at 0,
        so after one the epoch is part of it and new keys never collide with old ones."""
        return self.id if not self.key_epoch else "%s@%d" % (self.id, self.key_epoch)

    @property
    def key_id(self):
        """A short fingerprint of the key: a change means the device was re-keyed."""
        return hashlib.sha256(b"cityedge-key-id" + self.key).hexdigest()[:16]


@dataclass(frozen=True)
class Inventory:
    path: str
    devices: tuple = ()

    def by_id(self, device_id):
        for d in self.devices:
            if d.id == device_id:
                return d
        return None


def read_key(path, *, where=None):
    """The 16-byte key in a key file (32 hex digits). Refuses a file that group or others can
    read: a device key lets anyone forge that device's readings."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise where("key file not found: %s" % path) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise where("key file %s is readable by group or others (mode %04o); "
                    "run: chmod 600 %s" % (path, stat.S_IMODE(st.st_mode), path))
    try:
        text = open(path, encoding="ascii").read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise where("cannot read key file %s: %s" % (path, e)) from None
    if len(text) != 32 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise where("key file %s must hold 32 hex digits (a 128-bit key)" % path)
    return bytes.fromhex(text)


def load(path, *, read_keys=True):
    """Read and validate an inventory file; ConfigError on any problem."""
    text, data = tomlcheck.load(path)
    base = os.path.dirname(os.path.abspath(path))
    top = tomlcheck.Table(path, text, data)
    raw = top.get("device", list, [])
    top.done()
    devices, ids, addrs = [], {}, {}
    for i, entry in enumerate(raw):
        t = tomlcheck.Table(path, text, entry, ("device", i), label="device[%d]" % i)
        dev_id = t.get("id", str, required=True, check=_id_ok,
                       expect="1..64 letters, digits, '-', '_' or '.'")
        t.label = "device[%d] (%s)" % (i, dev_id)
        if dev_id in ids:
            raise t.error("id", "duplicate id, already used by device[%d]" % ids[dev_id])
        ids[dev_id] = i
        kind = t.choice("kind", KINDS, required=True)
        addr_text = t.get("addr", str, required=True, check=_addr_ok,
                          expect="6 hex digits such as \"12ab34\"")
        addr = int(addr_text, 16)
        if addr in addrs:
            raise t.error("addr", "duplicate address %s, already used by %s"
                          % (addr_text, addrs[addr]))
        addrs[addr] = dev_id
        key_rel = t.get("key_file", str, "", check=bool, expect="a path")
        key_file = key_rel if not key_rel or os.path.isabs(key_rel) else \
            os.path.join(base, key_rel)
        key = b""
        if read_keys and key_file:
            key = read_key(key_file, where=lambda msg: t.error("key_file", msg))
        location = None
        if t.has("location"):
            loc = t.sub("location")
            location = Location(
                lat=float(loc.get("lat", _NUM, required=True, check=lambda v: -90 <= v <= 90,
                                  expect="a latitude -90..90")),
                lon=float(loc.get("lon", _NUM, required=True, check=lambda v: -180 <= v <= 180,
                                  expect="a longitude -180..180")))
            loc.done()
        address = t.get("address", str, "")
        interval_s = t.get("interval_s", int, 600, check=lambda v: 10 <= v <= 86400,
                           expect="seconds 10..86400")
        enabled = t.get("enabled", bool, True)
        key_epoch = t.get("key_epoch", int, 0, check=lambda v: v >= 0, expect="an integer >= 0")
        settings = _settings(t, kind)
        t.done()
        devices.append(Device(id=dev_id, kind=kind, addr=addr, key_file=key_file, key=key,
                              location=location, address=address, interval_s=interval_s,
                              enabled=enabled, key_epoch=key_epoch, settings=settings, key_file_as_written=key_rel))
    return Inventory(path=os.path.abspath(path), devices=tuple(devices))


def _settings(t, kind):
    s = t.sub("settings")
    out = {}
    for name, (types, lo, hi, _) in SETTINGS[kind].items():
        if types is str:  # lo..hi: its length
            value = s.get(name, str, None, check=lambda v, lo=lo, hi=hi: lo <= len(v) <= hi,
                          expect="a string of %d..%d characters" % (lo, hi))
        else:
            value = s.get(name, types, None, check=lambda v, lo=lo, hi=hi: lo <= v <= hi,
                          expect="a number %s..%s" % (lo, hi))
        if value is not None:
            out[name] = value
    s.done()
    if kind == "parking" and out.get("category", "onStreet") not in ("onStreet", "offStreet"):
        raise s.error("category", "expected 'onStreet' or 'offStreet'")
    if kind == "co2" and "low_ppm" in out and "high_ppm" in out and out["low_ppm"] >= out["high_ppm"]:
        raise s.error("low_ppm", "must be below high_ppm (%d)" % out["high_ppm"])
    if kind == "fill" and out.get("blind_mm", 0) >= out.get("depth_mm", 10001):
        raise s.error("blind_mm", "must be below depth_mm (%d)" % out["depth_mm"])
    return out


def _id_ok(v):
    return 1 <= len(v) <= 64 and all(c.isalnum() or c in "-_." for c in v)


def _addr_ok(v):
    return len(v) == 6 and all(c in "0123456789abcdefABCDEF" for c in v)


# -- editing (the CLI and tools/flash) -------------------------------------------------------

def write_key(path, key=None):
    """Write `key` (default: a new random one) to `path` (mode 0600, folder 0700),
    atomically; return it."""
    key = key or secrets.token_bytes(16)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return key


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"%s"' % v.replace("\\", "\\\\").replace('"', '\\"')
    raise TypeError("cannot write %r to TOML" % (v,))


def dump(devices, header=""):
    """The inventory file's text for these devices."""
    out = [header.rstrip("\n") + "\n"] if header.strip() else []
    for d in devices:
        out.append("\n[[device]]")
        out.append("id = %s" % _toml_value(d.id))
        out.append("kind = %s" % _toml_value(d.kind))
        out.append("addr = %s" % _toml_value(d.addr_hex))
        if not d.planned:
            out.append("key_file = %s" % _toml_value(d.key_file_as_written or d.key_file))
        if d.location:
            out.append("location = { lat = %r, lon = %r }" % (d.location.lat, d.location.lon))
        if d.address:
            out.append("address = %s" % _toml_value(d.address))
        out.append("interval_s = %d" % d.interval_s)
        out.append("enabled = %s" % _toml_value(d.enabled))
        if d.key_epoch:
            out.append("key_epoch = %d" % d.key_epoch)
        if d.settings:
            out.append("[device.settings]")
            out.extend("%s = %s" % (k, _toml_value(v)) for k, v in d.settings.items())
    return "\n".join(out).lstrip("\n") + "\n"


def _header(path):
    """The comment lines at the top of a file, kept when the CLI rewrites it."""
    lines = []
    try:
        for line in open(path, encoding="utf-8"):
            if not line.startswith("#"):
                break
            lines.append(line)
    except FileNotFoundError:
        pass
    return "".join(lines)


def save(path, devices):
    """Rewrite the inventory atomically (its leading comment block is kept), then check that
    the result loads."""
    text = dump(devices, _header(path))
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def add(path, *, id, kind, addr=None, key_file=None, key=None, planned=False, **fields):
    """Add a device with a new key (or `key`), or a planned one with none; the address is the
    lowest free one when not given. Returns the Device."""
    inv = load(path, read_keys=False) if os.path.exists(path) else Inventory(path=path)
    if inv.by_id(id):
        raise ConfigError(path, None, "device %s" % id, "a device with this id exists")
    used = {d.addr for d in inv.devices}
    if addr is None:
        addr = next(a for a in range(1, 0xFFFFFF) if a not in used)
    elif addr in used:
        raise ConfigError(path, None, "device %s" % id, "address %06x is in use" % addr)
    if planned:
        dev = Device(id=id, kind=kind, addr=addr, key_file="", **fields)
    else:
        key_rel, key_abs = _new_key_file(path, id, key_file)
        dev = Device(id=id, kind=kind, addr=addr, key_file=key_abs,
                     key=write_key(key_abs, key), key_file_as_written=key_rel, **fields)
    save(path, inv.devices + (dev,))
    load(path)  # fails loudly (and names the field) if the new entry is not valid
    return dev


def _new_key_file(path, device_id, key_file=None):
    """(as written in the inventory, absolute) for a device's new key file, which must not
    exist yet: an old key is never overwritten by accident."""
    key_rel = key_file or os.path.join("keys", "%s.key" % device_id)
    base = os.path.dirname(os.path.abspath(path))
    key_abs = key_rel if os.path.isabs(key_rel) else os.path.join(base, key_rel)
    if os.path.exists(key_abs):
        raise ConfigError(path, None, "device %s" % device_id, "key file %s exists" % key_abs)
    return key_rel, key_abs


def provision(path, device_id, key=None):
    """Give a planned device its key (a new random one, or `key`): it becomes a device the
    gateway knows. Returns the Device."""
    inv = load(path, read_keys=False)
    dev = inv.by_id(device_id)
    if not dev:
        raise ConfigError(path, None, "device %s" % device_id, "no such device")
    if not dev.planned:
        raise ConfigError(path, None, "device %s" % device_id, "already has a key")
    key_rel, key_abs = _new_key_file(path, device_id)
    dev = dataclasses.replace(dev, key_file=key_abs, key=write_key(key_abs, key),
                              key_file_as_written=key_rel)
    save(path, tuple(dev if d.id == device_id else d for d in inv.devices))
    return dev


def set_enabled(path, device_id, enabled):
    inv = load(path, read_keys=False)
    if not inv.by_id(device_id):
        raise ConfigError(path, None, "device %s" % device_id, "no such device")
    save(path, tuple(dataclasses.replace(d, enabled=enabled) if d.id == device_id else d
                     for d in inv.devices))


def rekey(path, device_id, key=None):
    """Write a new key (or `key`) to the device's key file and count the epoch up. The gateway notices
    the new key (its fingerprint changes) and starts both of the device's counters again at
    0; the epoch keeps the device's new idempotency keys apart from the old ones."""
    inv = load(path, read_keys=False)
    dev = inv.by_id(device_id)
    if not dev:
        raise ConfigError(path, None, "device %s" % device_id, "no such device")
    if dev.planned:
        raise ConfigError(path, None, "device %s" % device_id, "planned: it has no key yet")
    dev = dataclasses.replace(dev, key=write_key(dev.key_file, key), key_epoch=dev.key_epoch + 1)
    save(path, tuple(dev if d.id == device_id else d for d in inv.devices))
    return dev
