# The device registry: the inventory's devices by address, with their session keys and their
# replay windows. Counters live in the store and are read at each (re)load; a device whose
# key changed (re-keyed) starts its counters again at 0. The inventory file is re-read when
# it changes.
import logging
import os

from protocol import counters

from gateway import codec
from gateway import inventory as inventory_mod
from gateway.errors import ConfigError
from gateway.logs import event

log = logging.getLogger("gateway.registry")


class Entry:
    """One known device: its inventory entry, session keys and uplink replay window."""

    __slots__ = ("device", "keys", "window")

    def __init__(self, device, keys, window):
        self.device = device
        self.keys = keys
        self.window = window


class Registry:
    def __init__(self, store, inventory_path, *, required=True):
        self.store = store
        self.path = inventory_path
        self.required = required
        self.by_addr = {}
        self.by_id = {}
        self._mtime = None
        self.load()

    def load(self):
        """(Re)read the inventory. Raises ConfigError when the file is bad."""
        if not os.path.exists(self.path) and not self.required:
            inv = inventory_mod.Inventory(path=self.path)
            event(log, logging.WARNING, "inventory_missing", path=self.path,
                  reason="no inventory file: no device is known")
        else:
            inv = inventory_mod.load(self.path)
            self._mtime = _mtime(self.path)
        by_addr, by_id = {}, {}
        # In a transaction: it waits for a group that is committing, whose counters the
        # entries in memory do not have yet; the stored ones do.
        with self.store.transaction():
            states = self.store.device_states()
            for dev in inv.devices:
                if dev.planned:  # no board holds it yet: nothing it could send verifies
                    continue
                state = states.get(dev.id)
                if state is None or state["key_id"] != dev.key_id:
                    if state is not None:
                        event(log, logging.WARNING, "device_rekeyed", device=dev.id,
                              reason="new key: counters start again at 0")
                    self.store.reset_device(dev.id, dev.key_id)
                    window = counters.ReplayWindow()
                else:
                    window = counters.ReplayWindow(state["up_newest"], state["up_seen"])
                entry = Entry(dev, codec.SessionKeys(dev.key), window)
                by_addr[dev.addr] = entry
                by_id[dev.id] = entry
        self.by_addr, self.by_id = by_addr, by_id
        event(log, logging.INFO, "inventory_loaded", path=self.path, devices=len(by_id))

    def reload_if_changed(self):
        """Re-read the inventory when its file changed; a bad file keeps the old one."""
        m = _mtime(self.path)
        if m is None or m == self._mtime:
            return False
        try:
            self.load()
            return True
        except ConfigError as e:
            self._mtime = m  # do not retry (and log) until it changes again
            event(log, logging.ERROR, "inventory_rejected", path=self.path, reason=str(e))
            return False


def _mtime(path):
    try:
        st = os.stat(path)
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return None
