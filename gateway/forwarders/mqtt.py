# MQTT 5 forwarder (aiomqtt): QoS 1, persistent session, one message per record, the
# idempotency key in the payload and as the user property "key". Topics and payloads are in
# gateway/README.md.
import asyncio
import collections
import contextlib
import datetime
import json
import logging
import ssl

import aiomqtt
from paho.mqtt import client as paho_client
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.forwarders.base import Forwarder, TransientError
from gateway.logs import event

log = logging.getLogger("gateway.forwarders.mqtt")


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


def _utf8(text):
    # MQTT 5.0 section 1.5.4: UTF-8 Encoded String, a two-byte length and the bytes.
    data = text.encode("utf-8")
    return len(data).to_bytes(2, "big") + data


def _varint(n):
    # MQTT 5.0 section 1.5.5: Variable Byte Integer.
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


# CONNACK refusals of the login: MQTT 5.0 reason codes 0x86 Bad User Name or Password and
# 0x87 Not authorized (Mosquitto answers a wrong password with the latter), and MQTT 3.1.1
# return codes 4 and 5.
_LOGIN_REFUSED = (0x86, 0x87, 4, 5)

_CONTENT_TYPE = 0x03  # MQTT 5.0 section 3.3.2.3: PUBLISH property identifiers
_USER_PROPERTY = 0x26


class PublishProperties(Properties):
    """The PUBLISH properties of one record, packed once (MQTT 5.0 section 3.3.2.3):
    Content Type, then the user properties "key" and "gateway". paho builds and packs a
    Properties object field by field for every message, which costs more than the rest of
    the publish; it only ever asks this one for pack() (again on a re-send)."""

    def __init__(self, content_type, key, gateway):
        body = (bytes((_CONTENT_TYPE,)) + _utf8(content_type)
                + bytes((_USER_PROPERTY,)) + _utf8("key") + _utf8(key)
                + bytes((_USER_PROPERTY,)) + _utf8("gateway") + _utf8(gateway))
        object.__setattr__(self, "packetType", PacketTypes.PUBLISH)
        object.__setattr__(self, "_packed", _varint(len(body)) + body)

    def pack(self):
        return self._packed

    def __str__(self):
        return "PublishProperties(%s)" % self._packed.hex()

    __repr__ = __str__


# Batches published and waiting for their PUBACKs at once; enough to cover the round trip
# to the broker while the event loop is busy storing the next uplinks.
_BATCHES_IN_FLIGHT = 4


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
            keepalive=c.keepalive_s, timeout=30,
            # No limit in paho: the forwarder bounds what is in flight (batches of
            # c.batch, within the broker's Receive Maximum), and with a limit paho walks
            # every message in flight on each PUBACK.
            max_inflight_messages=0))

    def describe(self, exc):
        text = super().describe(exc)
        rc = getattr(exc, "rc", None)
        code = getattr(rc, "value", rc)
        if code in _LOGIN_REFUSED:
            return ("the broker refused the login as %r: %s (check mqtt.username and "
                    "mqtt.password or mqtt.password_file)" % (self.config.username, text))
        # aiomqtt hands the ssl module's error on as an MqttError with its text.
        if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
            return ("TLS: the broker's certificate is not trusted: %s (check mqtt.ca_file "
                    "and mqtt.host)" % text)
        return text

    async def _pump(self, session):
        """Keep up to _BATCHES_IN_FLIGHT batches published and waiting for their PUBACKs:
        a batch is published as soon as its records are committed, not after the PUBACKs
        of the one before (which would leave the link idle for a round trip per batch).
        The cursor moves only over the oldest batches, once every PUBACK of each came, so
        it never passes a record the broker has not confirmed; batches confirmed out of
        order wait for the older ones."""
        in_flight = collections.deque()  # (rows, their PUBACKs), oldest first
        sent_seq = self.confirmed_seq
        messages = 0  # in flight: never more than the broker's Receive Maximum

        def room():
            if len(in_flight) >= _BATCHES_IN_FLIGHT:
                return 0
            return min(self.batch, session.receive_maximum - messages)
        try:
            while True:
                self.wake.clear()  # a commit from here on is seen by the next pass
                while room() > 0:
                    rows = self.store.records_after(sent_seq, room())
                    if not rows:
                        break
                    in_flight.append((rows, session.publish_all(self._messages(rows))))
                    sent_seq = rows[-1][0]
                    messages += len(rows)
                if not in_flight:
                    await self.wake.wait()
                    continue
                # Room for another batch: new records wake us too.
                more = room() > 0
                if not await session.acked(in_flight[0][1], self.wake if more else None):
                    continue
                done = []
                while in_flight and in_flight[0][1].future.done():
                    rows, acks = in_flight.popleft()
                    self._refused(rows, acks.codes)
                    done += rows
                    messages -= len(rows)
                self.confirmed(done)
        finally:
            for _, acks in in_flight:
                acks.future.cancel()

    def _messages(self, rows):
        """(topic, payload, properties) of each record."""
        c = self.config
        for seq, key, device_id, kind, received, body_text in rows:
            if c.format == "senml":
                body = json.loads(body_text)
                body["_observed"] = _unix(body["observed"])
                payload = json.dumps(senml(body), separators=(",", ":"))
                content_type = "application/senml+json"
            else:
                payload = body_text
                content_type = "application/json"
            props = PublishProperties(content_type, key, self.gateway_id)
            yield "%s/%s/%s" % (c.topic_prefix, kind, device_id), payload, props

    def _refused(self, rows, codes):
        for row, code in zip(rows, codes):
            if getattr(code, "is_failure", False):
                # The broker answered, and refused (an ACL, a quota): sending again would
                # get the same answer, so it is confirmed like the rest, and said loudly.
                self.metrics.forward_errors.labels(self.name).inc()
                event(log, logging.ERROR, "publish_refused", forwarder=self.name, key=row[1],
                      topic="%s/%s/%s" % (self.config.topic_prefix, row[3], row[2]),
                      reason=str(code))


class _Acks:
    """The PUBACKs one batch waits for: their reason codes in publish order, and a future
    done once the last one came, which must be by the deadline (event loop time). One
    future per batch, not per message: a future per message costs a callback on the event
    loop for each PUBACK."""

    __slots__ = ("future", "codes", "left", "deadline")

    def __init__(self, future, deadline):
        self.future = future
        self.codes = []
        self.left = 0
        self.deadline = deadline

    def ack(self, index, code):
        self.codes[index] = code
        self.left -= 1
        if not self.left and not self.future.done():
            self.future.set_result(None)


class _Session:
    """One connection, and a watcher that notices when it drops, since a batch waits for
    PUBACKs without looking at the connection.

    A batch is published through the paho client under aiomqtt, with one future resolved
    by paho's on_publish (called on the event loop, where aiomqtt reads the socket) once
    the batch's last PUBACK came: aiomqtt's own publish() costs a task, an event and a
    timeout per message, more than the rest of a publish. PUBACKs of anything else still
    go to aiomqtt."""

    def __init__(self, client, *, timeout=30):
        self.client = client
        self.timeout = timeout
        self._watch = None
        self._waiting = {}  # message id -> (_Acks of its batch, index in the batch)
        self._paho = None
        self._aiomqtt_on_publish = None
        # QoS 1 PUBLISHes the broker takes before their PUBACKs (MQTT 5.0 section 3.2.2.3.3:
        # 65,535 unless its CONNACK says less); Mosquitto says its max_inflight_messages.
        self.receive_maximum = 65535

    async def __aenter__(self):
        # aiomqtt warns above 10 pending calls; a batch has many PUBACKs in flight on purpose.
        self.client.pending_calls_threshold = 1 << 30
        paho = self.client._client
        aiomqtt_on_connect = paho.on_connect

        def on_connect(client, userdata, flags, reason_code, properties=None):
            self.receive_maximum = getattr(properties, "ReceiveMaximum", 65535)
            aiomqtt_on_connect(client, userdata, flags, reason_code, properties)
        paho.on_connect = on_connect
        await self.client.__aenter__()
        self._paho = self.client._client
        self._aiomqtt_on_publish = self._paho.on_publish
        self._paho.on_publish = self._on_publish
        self._watch = asyncio.ensure_future(self._watcher())
        return self

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        waiting = self._waiting.pop(mid, None)
        if waiting is None:
            self._aiomqtt_on_publish(client, userdata, mid, reason_code, properties)
        else:
            waiting[0].ack(waiting[1], reason_code)

    def publish_all(self, messages):
        """Publish (topic, payload, properties) with QoS 1; their _Acks."""
        loop = asyncio.get_running_loop()
        acks = _Acks(loop.create_future(), loop.time() + self.timeout)
        for index, (topic, payload, props) in enumerate(messages):
            info = self._paho.publish(topic, payload, 1, False, props)
            if info.rc != paho_client.MQTT_ERR_SUCCESS:
                raise TransientError("publish: %s" % paho_client.error_string(info.rc))
            # A QoS 1 PUBACK is read by this loop, so it cannot come before it is waited for.
            self._waiting[info.mid] = (acks, index)
            acks.codes.append(None)
            acks.left += 1
        if not acks.left:
            acks.future.set_result(None)
        return acks

    async def _watcher(self):
        async for _ in self.client.messages:  # ends with MqttError on disconnection
            pass

    async def acked(self, acks, wake=None):
        """Wait for a batch's PUBACKs (_Acks from publish_all); True once they all came,
        False when the event wake was set first. Raises TransientError when the connection
        drops or the batch's PUBACKs are not all there self.timeout after its publish."""
        waits = {acks.future, self._watch}
        woken = None
        if wake is not None:
            woken = asyncio.ensure_future(wake.wait())
            waits.add(woken)
        try:
            timeout = max(0.0, acks.deadline - asyncio.get_running_loop().time())
            done, _ = await asyncio.wait(waits, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            if woken is not None:
                woken.cancel()
        if acks.future in done:
            return True
        if woken is not None and woken in done:
            return False
        self._waiting.clear()
        if not done:
            raise TransientError("no PUBACK within %s s" % self.timeout)
        exc = self._watch.exception() if not self._watch.cancelled() else None
        raise TransientError("connection lost: %s" % (exc or "closed"))

    async def __aexit__(self, *exc):
        self._waiting.clear()
        if self._watch:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._watch
        with contextlib.suppress(aiomqtt.MqttError, OSError):
            await self.client.__aexit__(*exc)
        return False


def _unix(iso_text):
    return datetime.datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()
