"""The gateway end of a Wi-Fi link, for tests of boards without the gateway service: a UDP
socket that checks frames exactly as PROTOCOL.md says (counter, replay window, MIC), keeps
what it accepted, answers each accepted uplink with a receipt, and hands out commands."""
import os
import socket
import threading

from protocol import command, counters, frame, schema
from protocol.errors import ProtocolError, ReplayError


class Device:
    def __init__(self, key):
        self.key = key
        self.keys = frame.Keys(key)
        self.window = counters.ReplayWindow()
        self.down_fcnt = 0
        self.commands = []   # (command_id, name, arg) waiting to go down
        self.acks = {}       # command_id -> result


class InventoryDevices(dict):
    """Devices as the gateway knows them: read from a fleet inventory (gateway.inventory) at
    each frame, so keys that tools/flash writes count at once; a new key, a new device."""

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.lock = threading.Lock()

    def get(self, addr, default=None):
        from gateway import inventory
        with self.lock:
            if not os.path.exists(self.path):
                return default
            for dev in inventory.load(self.path).devices:
                if dev.addr == addr and not dev.planned:
                    known = dict.get(self, addr)
                    if known is None or known.key != dev.key:
                        known = Device(dev.key)
                        self[addr] = known
                    return known
            return default


class Receiver:
    def __init__(self, devices, host="127.0.0.1", port=0):
        self.devices = {addr: Device(key) for addr, key in devices.items()}
        self.accepted = []   # (addr, fcnt, kind name, message)
        self.rejected = []   # (reason, error text)
        self.frames = {}     # (addr, fcnt) -> the authentic frame sent with that counter
        self.reused = []     # (addr, fcnt): one counter on two different frames
        self.up = True       # False: the gateway is unreachable (datagrams are dropped)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self.port = self._sock.getsockname()[1]
        self._changed = threading.Condition()
        threading.Thread(target=self._serve, daemon=True).start()

    def queue_command(self, addr, command_id, name, arg=None):
        self.devices[addr].commands.append((command_id, name, arg))

    def readings(self, kind=None):
        with self._changed:
            return [a for a in self.accepted if kind is None or a[2] == kind]

    def wait_for(self, predicate, timeout=10.0):
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError("receiver: condition not met in %.0f s; accepted %d, "
                                   "rejected %r" % (timeout, len(self.accepted), self.rejected[-3:]))

    def close(self):
        self._sock.close()

    def _serve(self):
        while True:
            try:
                data, source = self._sock.recvfrom(512)
            except OSError:
                return
            if self.up:
                self._handle(data, source)

    def _handle(self, data, source):
        try:
            header = frame.parse_header(data)
            device = self.devices.get(header.addr)
            if device is None:
                raise ProtocolError("unknown device %06x" % header.addr)
            fcnt = counters.full_counter(device.window.newest, header.fcnt_low)
            body = frame.unseal(device.keys, data, fcnt)
            first = self.frames.setdefault((header.addr, fcnt), bytes(data))
            if first != data:
                self.reused.append((header.addr, fcnt))
            try:
                device.window.check(fcnt)
            except ReplayError:
                # Authentic but already accepted: the receipt was lost. Confirm it again,
                # so the node can let the frame go; never store it twice.
                self._receipt(device, header.addr, fcnt, source)
                raise
            message = schema.decode(header.kind, body)
            device.window.accept(fcnt)
        except ProtocolError as e:
            with self._changed:
                self.rejected.append((type(e).__name__, str(e)))
                self._changed.notify_all()
            return
        if header.kind == schema.ACK:
            device.acks[message["command_id"]] = message["result"]
            device.commands = [c for c in device.commands if c[0] != message["command_id"]]
        with self._changed:
            self.accepted.append((header.addr, fcnt, schema.kind_name(header.kind), message))
            self._changed.notify_all()
        for command_id, name, arg in self._receipt(device, header.addr, fcnt, source):
            self._down(device, header.addr, schema.COMMAND, command.encode(command_id, name, arg),
                       source)

    def _receipt(self, device, addr, fcnt, source):
        pending = list(device.commands)
        self._down(device, addr, schema.RECEIPT,
                   schema.encode(schema.RECEIPT, {"fcnt": fcnt, "commands": len(pending)}), source)
        return pending

    def _down(self, device, addr, kind, body, source):
        device.down_fcnt += 1
        self._sock.sendto(frame.seal(device.keys, kind, addr, device.down_fcnt, body, frame.DOWN),
                          source)
