# Test harness: a fleet inventory in a temporary folder, a gateway config for it, and a
# gateway running in its own thread and event loop (so tests can use blocking sockets).
import asyncio
import dataclasses
import os
import threading

from gateway import config as config_mod
from gateway import inventory
from gateway.app import Gateway

KINDS = ("fill", "parking", "co2", "luminaire")


def make_fleet(folder, n=4, kinds=KINDS, start_addr=0x100001):
    """An inventory with n devices (kinds in turn) and their key files; returns
    (path, [Device])."""
    folder = str(folder)
    path = os.path.join(folder, "inventory.toml")
    devices = []
    os.makedirs(os.path.join(folder, "keys"), mode=0o700, exist_ok=True)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        dev_id = "%s-%04d" % (kind, i)
        key_rel = "keys/%s.key" % dev_id
        key = inventory.write_key(os.path.join(folder, key_rel))
        devices.append(inventory.Device(
            id=dev_id, kind=kind, addr=start_addr + i, key_file=os.path.join(folder, key_rel),
            key=key, key_file_as_written=key_rel, interval_s=600,
            location=inventory.Location(52.37 + i * 1e-4, 4.89)))
    inventory.save(path, tuple(devices))
    return path, devices


def make_config(folder, inventory_path, *, broker_port=None, gateway_id="gw-test",
                http=False, **sections):
    folder = str(folder)
    c = config_mod.defaults()
    return dataclasses.replace(
        c, gateway_id=gateway_id, inventory=inventory_path, inventory_required=True,
        udp=config_mod.UdpIngressConfig(port=0),
        store=config_mod.StoreConfig(path=os.path.join(folder, "%s.sqlite" % gateway_id)),
        http=config_mod.HttpConfig(enabled=http, port=0),
        mqtt=config_mod.MqttConfig(enabled=broker_port is not None, port=broker_port or 1883,
                                   backoff_min_s=0.05, backoff_max_s=0.5),
        **sections)


class GatewayThread:
    """A Gateway in a thread of its own. .udp is (host, port) of its UDP ingress."""

    def __init__(self, config, maintenance_s=0.2, **kw):
        self.config = config
        self.kw = dict(kw, maintenance_s=maintenance_s)
        self.ready = threading.Event()
        self.error = None
        self.gw = None

    def __enter__(self):
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        self.ready.wait(20)
        if self.error:
            raise self.error
        if not self.gw:
            raise AssertionError("gateway did not start")
        return self

    def __exit__(self, *exc):
        self.stop()

    def _main(self):
        asyncio.run(self._amain())

    async def _amain(self):
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        try:
            async with Gateway(self.config, **self.kw) as gw:
                self.gw = gw
                ingress = gw.ingresses[0] if gw.ingresses else None
                self.udp = ("127.0.0.1", ingress.port) if ingress else None
                self.http_port = gw.http.port if gw.http else None
                self.ready.set()
                await self.stopping.wait()
        except BaseException as e:  # hand startup errors to the test
            self.error = e
            self.ready.set()

    def call(self, fn, *args):
        """Run fn(*args) on the gateway's loop (the store is not shared across threads)."""
        async def run():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def metric(self, name, **labels):
        return self.call(lambda: self.gw.metrics.registry.get_sample_value(name, labels)) or 0

    def stop(self):
        if self.thread.is_alive() and self.gw:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(20)
