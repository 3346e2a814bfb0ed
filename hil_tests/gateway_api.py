"""The gateway as a bench sees it: its HTTP API (gateway/README.md, "HTTP API"). On a bench
it is the site's gateway (`--gateway=http://HOST:8080`); with virtual boards the suite
starts a real gateway process with an inventory of its own."""
import json
import os
import secrets
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path


class GatewayAPI:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def _call(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data,
                                         method="GET" if body is None else "POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                raw = reply.read()
        except urllib.error.HTTPError as e:
            raise AssertionError("gateway %s%s answered %d: %s"
                                 % (self.url, path, e.code, e.read()[:200])) from None
        except OSError as e:
            raise AssertionError("gateway %s is unreachable (%s): check --gateway and that "
                                 "the gateway runs" % (self.url, e)) from None
        return json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()

    def device(self, device_id):
        return self._call("/api/devices/%s" % device_id)

    def records(self, device_id, kind=None, limit=100):
        query = "?limit=%d" % limit + ("&kind=%s" % kind if kind else "")
        return self._call("/api/devices/%s/readings%s" % (device_id, query))

    def commands(self, device_id):
        return self._call("/api/devices/%s/commands" % device_id)

    def queue_command(self, device_id, name, arg=None):
        return self._call("/api/devices/%s/commands" % device_id, {"command": name, "arg": arg})

    def rejected(self, reason):
        """How many frames the gateway has rejected for this reason since it started."""
        text = self._call("/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith("cityedge_frames_rejected_total{") and \
                    'reason="%s"' % reason in line:
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def wait_for(self, what, check, timeout):
        """Poll until check() returns something true; return it. The failure says what
        was awaited."""
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError("gateway %s: %s did not happen within %.0f s"
                                     % (self.url, what, timeout))
            time.sleep(0.1)


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_inventory(work, devices):
    """fleet.toml and keys/ for [(device_id, kind, addr, interval_s)], as tools/flash writes
    them; returns {device_id: key}."""
    keys_dir = Path(work) / "keys"
    keys_dir.mkdir(parents=True, exist_ok=True)
    lines, keys = [], {}
    for device_id, kind, addr, interval_s in devices:
        key = secrets.token_bytes(16)
        path = keys_dir / (device_id + ".key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key.hex() + "\n")
        lines += ["[[device]]", 'id = "%s"' % device_id, 'kind = "%s"' % kind,
                  'addr = "%06x"' % addr, 'key_file = "keys/%s.key"' % device_id,
                  "interval_s = %d" % interval_s, ""]
        keys[device_id] = key
    (Path(work) / "fleet.toml").write_text("\n".join(lines))
    return keys


def read_inventory(path):
    """{device_id: {"kind", "addr"}} from a fleet inventory (fleet.toml)."""
    import tomllib
    with open(path, "rb") as f:
        data = tomllib.load(f)
    out = {}
    for entry in data.get("device", []):
        out[entry["id"]] = {"kind": entry.get("kind"), "addr": entry.get("addr")}
    return out
