# MQTT 5 forwarder (aiomqtt): QoS 1, persistent session, one message per record, the
# idempotency key in the payload and as the user property "key". Topics and payloads are in
# gateway/README.md.
import asyncio
import contextlib
import datetime
import json
import ssl

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.forwarders.base import Forwarder, TransientError


def topic_for(prefix, body):
    return "%s/%s/%s" % (prefix, body["kind"], body["device"])


def senml(body):
    """RFC 8428 SenML JSON for one record: base name urn:dev:cityedge:<device>:, base time
    the observation time; the idempotency key is the string record "key"."""
    base = {"bn": "urn:dev:cityedge:%s:" % body["device"], "bt": body["_observed"]}
    out = [dict(base, n="key", vs=body["key"])]
    for name, value in body["values"].items():
        if value is None:
            continue
        rec = {"n": name}
        unit = SENML_UNITS.get(name)
        if unit:
            rec["u"] = unit
        if isinstance(value, bool):
            rec["vb"] = value
        elif isinstance(value, (int, float)):
            rec["v"] = value
        elif isinstance(value, list):
            rec["vs"] = ",".join(value)
        else:
            rec["vs"] = str(value)
        out.append(rec)
    return out


SENML_UNITS = {"fill_level": "/", "distance_m": "m", "temperature_c": "Cel",
               "time_to_full_s": "s", "state_duration_s": "s", "field_deviation_t": "T",
               "co2_ppm": "ppm", "relative_humidity": "/", "power_w": "W", "energy_j": "J",
               "dimming_level": "/", "burn_time_s": "s", "battery_v": "V", "uptime_s": "s",
               "awake_s": "s", "cycle_charge_c": "C"}


class MqttForwarder(Forwarder):
    name = "mqtt"
    transient = Forwarder.transient + (aiomqtt.MqttError,)

    def __init__(self, config, *, gateway_id, store, metrics):
        super().__init__(store=store, metrics=metrics, batch=config.batch,
                         backoff_min_s=config.backoff_min_s, backoff_max_s=config.backoff_max_s)
        self.config = config
        self.gateway_id = gateway_id
        self.client_id = config.client_id or "cityedge-%s" % gateway_id

    def connect(self):
        c = self.config
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = c.session_expiry_s
        password = c.password
        if c.password_file:
            password = open(c.password_file, encoding="utf-8").read().strip()
        tls = None
        if c.tls:
            tls = ssl.create_default_context(cafile=c.ca_file or None)
            if c.cert_file:
                tls.load_cert_chain(c.cert_file, c.key_file or None)
        return _Session(aiomqtt.Client(
            c.host, c.port, identifier=self.client_id,
            protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props,
            username=c.username or None, password=password or None, tls_context=tls,
            keepalive=c.keepalive_s, timeout=30, max_inflight_messages=c.batch))

    async def send(self, session, rows):
        c = self.config
        publishes = []
        for seq, key, device_id, kind, received, body_text in rows:
            if c.format == "senml":
                body = json.loads(body_text)
                body["_observed"] = _unix(body["observed"])
                payload = json.dumps(senml(body), separators=(",", ":"))
                content_type = "application/senml+json"
            else:
                payload = body_text
                content_type = "application/json"
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [("key", key), ("gateway", self.gateway_id)]
            props.ContentType = content_type
            topic = "%s/%s/%s" % (c.topic_prefix, kind, device_id)
            publishes.append(session.client.publish(topic, payload, qos=1, properties=props))
        await session.confirm(asyncio.gather(*publishes))


class _Session:
    """One connection, and a watcher that notices when it drops: aiomqtt's publish waits for
    its PUBACK without looking at the connection, so a send races the watcher."""

    def __init__(self, client):
        self.client = client
        self._watch = None

    async def __aenter__(self):
        # aiomqtt warns above 10 pending calls; a batch has many PUBACKs in flight on purpose.
        self.client.pending_calls_threshold = 1 << 30
        await self.client.__aenter__()
        self._watch = asyncio.ensure_future(self._watcher())
        return self

    async def _watcher(self):
        async for _ in self.client.messages:  # ends with MqttError on disconnection
            pass

    async def confirm(self, gathered):
        gathered = asyncio.ensure_future(gathered)
        try:
            done, _ = await asyncio.wait({gathered, self._watch},
                                         return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            gathered.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await gathered
            raise
        if gathered in done:
            gathered.result()
            return
        gathered.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await gathered
        exc = self._watch.exception() if not self._watch.cancelled() else None
        raise TransientError("connection lost: %s" % (exc or "closed"))

    async def __aexit__(self, *exc):
        if self._watch:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._watch
        with contextlib.suppress(aiomqtt.MqttError, OSError):
            await self.client.__aexit__(*exc)
        return False


def _unix(iso_text):
    return datetime.datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()
