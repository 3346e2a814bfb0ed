# The flash as mpremote sees it on a board with a pty console (loaded by _boot.py only then,
# so the firmware's heap does not pay for it in tests).
import vfs


class Flash(vfs.VfsPosix):
    def ilistdir(self, path):
        # The unix port lists (name, type, inode); an ESP32's filesystem adds the size,
        # which `mpremote fs ls` shows.
        for entry in super().ilistdir(path):
            size = 0 if entry[1] == 0x4000 else self.stat(path.rstrip("/") + "/" + entry[0])[6]
            yield entry[:3] + (size,)
