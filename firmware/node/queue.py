# Frames waiting to be delivered, in flash, oldest first. A frame is written here before it
# is sent and removed only once delivery is confirmed, so a reset at any instant loses
# nothing. Each file is named by the frame's counter, which orders them. Bounded: when
# full, the oldest frame is dropped and counted.
import os


class FlashQueue:
    def __init__(self, directory="queue", limit=100):
        self._dir = directory
        self._limit = limit
        try:
            os.mkdir(directory)
        except OSError:
            pass  # already there
        self._names = sorted(n for n in os.listdir(directory) if n.endswith(".f"))
        self.dropped = self._read_dropped()

    def _read_dropped(self):
        try:
            with open(self._dir + "/dropped") as f:
                return int(f.read())
        except (OSError, ValueError):
            return 0

    def __len__(self):
        return len(self._names)

    def push(self, frame, fcnt):
        while len(self._names) >= self._limit:
            self.drop(int(self._names[0][:-2]))
        name = "%010d.f" % fcnt
        path = self._dir + "/" + name
        with open(path + ".new", "wb") as f:
            f.write(frame)
        os.rename(path + ".new", path)
        self._names.append(name)

    def frames(self):
        """(counter, frame) pairs, oldest first."""
        for name in list(self._names):
            try:
                with open(self._dir + "/" + name, "rb") as f:
                    data = f.read()
            except OSError:
                self._names.remove(name)
                continue
            yield int(name[:-2]), data

    def remove(self, fcnt):
        self._remove("%010d.f" % fcnt)

    def drop(self, fcnt):
        """Give up a frame undelivered: it is counted (the status frame reports it)."""
        self.remove(fcnt)
        self.dropped += 1
        with open(self._dir + "/dropped.new", "w") as f:
            f.write(str(self.dropped))
        os.rename(self._dir + "/dropped.new", self._dir + "/dropped")

    def _remove(self, name):
        try:
            os.remove(self._dir + "/" + name)
        except OSError:
            pass  # already gone: a reset between the unlink and this bookkeeping
        if name in self._names:
            self._names.remove(name)
