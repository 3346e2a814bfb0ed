# A MicroPython script (it runs on CPython too): encode, encrypt and MIC one reading of each
# kind, as a node does once per cycle, and print "kind hex-frame" per line.
# Arguments: device key (hex), device address (hex), first frame counter, and optionally
# one kind name to seal only that kind.
import gc
import sys

from protocol import frame, schema
from tools.samples import READINGS


def main(argv):
    keys = frame.Keys(bytes.fromhex(argv[1]))
    addr = int(argv[2], 16)
    fcnt = int(argv[3])
    only = argv[4] if len(argv) > 4 else None
    for kind, reading in READINGS:
        if only and schema.kind_name(kind) != only:
            continue
        gc.collect()
        sealed = frame.seal(keys, kind, addr, fcnt, schema.encode(kind, reading))
        print(schema.kind_name(kind), sealed.hex())
        fcnt += 1


# Run as `micropython -m tools.seal_samples ARGS`: argv[0] is the interpreter there.
main(sys.argv if sys.argv[0].endswith(".py") else [""] + sys.argv[1:])
