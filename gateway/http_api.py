# The HTTP API and status page (aiohttp): /healthz, /metrics, /api/devices,
# /api/devices/{id}/readings, /api/devices/{id}/commands (GET, POST), and / (status page).
import html
import json
import logging
import time

from aiohttp import web

from protocol import command
from protocol.errors import ProtocolError

from gateway import normalise
from gateway.logs import event

log = logging.getLogger("gateway.http")


class HttpApi:
    def __init__(self, gateway, *, host, port):
        self.gw = gateway
        self.host = host
        self.port = port
        self.app = web.Application()
        self.app.add_routes([
            web.get("/", self.status_page), web.get("/healthz", self.healthz),
            web.get("/metrics", self.metrics), web.get("/api/devices", self.devices),
            web.get("/api/devices/{id}", self.device),
            web.get("/api/devices/{id}/readings", self.readings),
            web.get("/api/devices/{id}/commands", self.commands),
            web.post("/api/devices/{id}/commands", self.queue_command)])
        self.runner = None

    async def start(self):
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        self.port = self.runner.addresses[0][1]  # the real port when 0 was asked for
        event(log, logging.INFO, "http_started", host=self.host, port=self.port)

    async def stop(self):
        if self.runner:
            await self.runner.cleanup()

    # -- views --------------------------------------------------------------------------------

    async def healthz(self, request):
        gw = self.gw
        pipeline_ok = any(t.get_name() == "pipeline" and not t.done() for t in gw.tasks)
        body = {"status": "ok" if pipeline_ok else "failing",
                "pipeline": pipeline_ok,
                "forwarders": {f.name: {"connected": f.connected} for f in gw.forwarders},
                "store_quota_alarm": gw._alarm, "store_full": gw.pipeline.store_full,
                "devices": len(gw.registry.by_id),
                "uptime_s": round(time.time() - gw.started)}
        return web.json_response(body, status=200 if pipeline_ok else 503)

    async def metrics(self, request):
        self.gw.update_metrics()
        return web.Response(body=self.gw.metrics.render(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    def _device_summary(self, entry, states, silent):
        dev = entry.device
        state = states.get(dev.id) or {}
        store = self.gw.store
        last = store.device_records(dev.id, 1, kind=dev.kind)
        status = store.device_records(dev.id, 1, kind="status")
        battery = status[0]["values"].get("battery_v") if status else None
        alarms = []
        if dev.id in silent:
            alarms.append("silent")
        if battery is not None and battery * 1000 < self.gw.config.alarms.battery_low_mv:
            alarms.append("battery_low")
        if last and last[0]["values"].get("faults"):
            alarms.extend("fault:" + f for f in last[0]["values"]["faults"])
        events = store.device_records(dev.id, 1, kind="event")
        return {"id": dev.id, "kind": dev.kind, "addr": dev.addr_hex, "enabled": dev.enabled,
                "location": {"lat": dev.location.lat, "lon": dev.location.lon} if dev.location else None,
                "address": dev.address, "interval_s": dev.interval_s,
                "last_seen": normalise.iso(state["last_seen"]) if state.get("last_seen") else None,
                "uplinks": state.get("uplinks", 0), "silent": dev.id in silent,
                "battery_v": battery, "alarms": alarms,
                "last_reading": last[0] if last else None,
                "last_event": events[0] if events else None}

    async def devices(self, request):
        states = self.gw.store.device_states()
        silent = set(self.gw.silent_devices())
        return web.json_response([self._device_summary(e, states, silent)
                                  for e in self.gw.registry.by_id.values()])

    def _entry(self, request):
        entry = self.gw.registry.by_id.get(request.match_info["id"])
        if entry is None:
            raise web.HTTPNotFound(text=json.dumps({"error": "no such device"}),
                                   content_type="application/json")
        return entry

    async def device(self, request):
        entry = self._entry(request)
        return web.json_response(self._device_summary(entry, self.gw.store.device_states(),
                                                      set(self.gw.silent_devices())))

    async def readings(self, request):
        entry = self._entry(request)
        try:
            limit = max(1, min(1000, int(request.query.get("limit", "100"))))
        except ValueError:
            raise web.HTTPBadRequest(text="limit must be an integer") from None
        return web.json_response(self.gw.store.device_records(
            entry.device.id, limit, kind=request.query.get("kind")))

    async def commands(self, request):
        entry = self._entry(request)
        return web.json_response(self.gw.store.commands(entry.device.id))

    async def queue_command(self, request):
        entry = self._entry(request)
        try:
            body = await request.json()
            name, arg = body["command"], body.get("arg")
            command.encode(0, name, arg)  # refuses an unknown command or a bad argument
        except (ValueError, KeyError, TypeError, ProtocolError) as e:
            return web.json_response({"error": "bad command: %s" % e}, status=400)
        cmd = self.gw.store.add_command(entry.device.id, name, arg, self.gw.config.commands.ttl_s)
        event(log, logging.INFO, "command_queued", device=entry.device.id, command=name,
              command_id=cmd["command_id"], reason="api")
        return web.json_response(cmd, status=201)

    async def status_page(self, request):
        states = self.gw.store.device_states()
        silent = set(self.gw.silent_devices())
        rows = []
        for entry in self.gw.registry.by_id.values():
            d = self._device_summary(entry, states, silent)
            reading = d["last_reading"]
            values = ", ".join("%s=%s" % kv for kv in reading["values"].items()) if reading else ""
            rows.append("<tr class='%s'><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
                        "<td>%s</td><td>%s</td></tr>" % (
                            "alarm" if d["alarms"] else "", _e(d["id"]), _e(d["kind"]),
                            _e(d["last_seen"] or "never"),
                            _e(reading["observed"] if reading else ""), _e(values),
                            _e("" if d["battery_v"] is None else "%.2f V" % d["battery_v"]),
                            _e(", ".join(d["alarms"]) or ("disabled" if not d["enabled"] else "ok"))))
        n_silent = len(silent)
        page = _PAGE % {
            "gateway": _e(self.gw.config.gateway_id), "n": len(rows), "silent": n_silent,
            "rows": "\n".join(rows),
            "forwarders": _e(", ".join("%s: %s" % (f.name, "up" if f.connected else "DOWN")
                                       for f in self.gw.forwarders) or "none (local only)")}
        return web.Response(text=page, content_type="text/html")


def _e(text):
    return html.escape(str(text))


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<title>cityedge gateway %(gateway)s</title>
<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}tr.alarm{background:#fdd}</style>
</head><body>
<h1>cityedge gateway %(gateway)s</h1>
<p>%(n)s devices, %(silent)s silent. Forwarders: %(forwarders)s.
<a href="/metrics">metrics</a> · <a href="/api/devices">devices (JSON)</a></p>
<table><tr><th>device</th><th>kind</th><th>last seen</th><th>last reading</th><th>values</th>
<th>battery</th><th>alarms</th></tr>
%(rows)s
</table></body></html>
"""
