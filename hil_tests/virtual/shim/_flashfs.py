# The flash as mpremote sees it on a board with a pty console (loaded by _boot.py only then,
# so the firmware's heap does not pay for it in tests).
import vfs

_BLOCK = 4096  # LittleFS on an ESP32 allocates the flash in 4 KB blocks
_ENOSPC = 28
_DIR = 0x4000


def _blocks(size):
    return (size + _BLOCK - 1) // _BLOCK


class Flash(vfs.VfsPosix):
    def ilistdir(self, path):
        # The unix port lists (name, type, inode); an ESP32's filesystem adds the size,
        # which `mpremote fs ls` shows.
        for entry in super().ilistdir(path):
            size = 0 if entry[1] == _DIR else self.stat(path.rstrip("/") + "/" + entry[0])[6]
            yield entry[:3] + (size,)


class SizedFlash(Flash):
    """A flash of a chip's size (`VirtualBoard(flash_bytes=...)`). A class of its own, so
    that a board of unbounded size runs no Python code on every open."""

    def __init__(self, root, size):
        super().__init__(root)
        self._size = size

    def _used_blocks(self, path="/"):
        used = 0
        for entry in self.ilistdir(path):
            child = path.rstrip("/") + "/" + entry[0]
            used += 1 + self._used_blocks(child) if entry[1] == _DIR else _blocks(entry[3])
        return used

    def statvfs(self, path):
        total = self._size // _BLOCK
        free = max(0, total - self._used_blocks())
        return (_BLOCK, _BLOCK, total, free, free, 0, 0, 0, 0, 255)

    def open(self, path, mode):
        f = super().open(path, mode)
        if "w" not in mode and "a" not in mode:
            return f
        return _Bounded(f, self._size // _BLOCK - self._used_blocks(), self.stat(path)[6]
                        if "a" in mode else 0)


class _Bounded:
    """A file being written on a full-size flash: a write that needs a block the filesystem
    no longer has fails with ENOSPC, as on the chip."""

    def __init__(self, f, free_blocks, size):
        self._f = f
        self._free = free_blocks + _blocks(size)
        self._size = size

    def write(self, data):
        if _blocks(self._size + len(data)) > self._free:
            raise OSError(_ENOSPC)
        n = self._f.write(data)
        self._size += n
        return n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()

    def __getattr__(self, name):
        return getattr(self._f, name)
