# A MicroPython script (it runs on CPython too): encode, encrypt and MIC one reading of each
# kind, as a node does once per cycle, and print "kind hex-frame" per line.
# Arguments: device key (hex), device address (hex), first frame counter.
import gc
import sys

from protocol import frame, schema
from tools.samples import READINGS


def main(argv):
    keys = frame.Keys(bytes.fromhex(argv[1]))
    addr = int(argv[2], 16)
    fcnt = int(argv[3])
    for kind, reading in READINGS:
        gc.collect()
        sealed = frame.seal(keys, kind, addr, fcnt, schema.encode(kind, reading))
        print(schema.kind_name(kind), sealed.hex())
        fcnt += 1


main(sys.argv)
