# Runs under the MicroPython unix port: reads one JSON request per line from stdin, calls a
# function of protocol/ and writes one JSON answer per line. Values that JSON cannot hold
# travel tagged (see tests/runtimes.py, which speaks the other end).
import json
import struct
import sys

sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[1] + "/firmware")  # the firmware's pure functions (apps.*)
if len(sys.argv) > 2:
    sys.path.insert(0, sys.argv[2])  # protocol/ compiled to .mpy, as a board carries it

from protocol import errors  # noqa: E402

_ERRORS = [getattr(errors, n) for n in dir(errors) if n.endswith("Error")]
_live = {}  # objects kept between calls, by handle, until the test side frees them
_next = [0]


def wrap(v):
    if v is None or v is True or v is False or isinstance(v, (int, str)):
        return v
    if isinstance(v, float):
        return {"$d": struct.pack(">d", v).hex()}
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$b": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [wrap(x) for x in v]
    if isinstance(v, dict):
        return {"$m": [[wrap(k), wrap(x)] for k, x in v.items()]}
    _next[0] += 1
    handle = _next[0]
    _live[handle] = v
    fields = {}
    for name in dir(v):
        if not name.startswith("_"):
            attr = getattr(v, name)
            if not callable(attr) and not isinstance(attr, type):
                try:
                    fields[name] = wrap(attr)
                except TypeError:
                    pass
    return {"$obj": handle, "fields": fields}


def unwrap(v):
    if isinstance(v, list):
        return [unwrap(x) for x in v]
    if isinstance(v, dict):
        if "$d" in v:
            return struct.unpack(">d", bytes.fromhex(v["$d"]))[0]
        if "$b" in v:
            return bytes.fromhex(v["$b"])
        if "$m" in v:
            return {unwrap(k): unwrap(x) for k, x in v["$m"]}
        if "$obj" in v:
            return _live[v["$obj"]]
        if "$t" in v:
            return tuple(unwrap(x) for x in v["$t"])
    return v


def resolve(path):
    module, _, name = path.rpartition(".")
    mod = __import__(module, None, None, [name])
    return getattr(mod, name)


def answer(req):
    for handle in req.get("free", ()):
        _live.pop(handle, None)
    target = req["f"]
    if target == "=":  # a fresh snapshot of a live object
        return {"ok": wrap(unwrap(req["a"])[0])}
    if target.startswith("."):  # a method of a live object: ".name"
        args = unwrap(req["a"])
        fn = getattr(args[0], target[1:])
        args = args[1:]
    else:
        fn = resolve(target)
        args = unwrap(req["a"])
    try:
        return {"ok": wrap(fn(*args))}
    except Exception as e:  # reported to the test, which re-raises it on CPython
        names = [c.__name__ for c in _ERRORS if isinstance(e, c)]
        return {"err": type(e).__name__, "msg": str(e), "is": names}


while True:
    line = sys.stdin.readline()
    if not line:
        break
    try:
        reply = json.dumps(answer(json.loads(line)))
    except Exception as e:  # even a failure outside the call is an answer, not a dead server
        reply = json.dumps({"err": type(e).__name__, "msg": str(e), "is": []})
    sys.stdout.write(reply + "\n")
