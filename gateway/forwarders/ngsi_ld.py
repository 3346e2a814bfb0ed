# NGSI-LD forwarder (aiohttp): batch upserts (POST /ngsi-ld/v1/entityOperations/upsert,
# options=update) of normalized Smart Data Models entities, chunked below the configured
# entity count and body size. 201/204 confirm a chunk; 207 confirms it with per-entity
# errors, which are logged (they would fail again); 413 splits the chunk; 408, 429, 5xx
# and connection errors retry later with backoff; other 4xx are logged and skipped.
import json
import logging

import aiohttp

from gateway.forwarders.base import Forwarder, TransientError
from gateway.forwarders.ngsi_ld_mapping import to_entity
from gateway.logs import event

log = logging.getLogger("gateway.forwarders.ngsi_ld")

UPSERT = "/ngsi-ld/v1/entityOperations/upsert"


class NgsiLdForwarder(Forwarder):
    name = "ngsi_ld"
    transient = Forwarder.transient + (aiohttp.ClientError,)

    def __init__(self, config, *, store, metrics, registry):
        super().__init__(store=store, metrics=metrics, batch=config.batch_max_entities * 4,
                         backoff_min_s=config.backoff_min_s, backoff_max_s=config.backoff_max_s)
        self.config = config
        self.registry = registry
        self.url = config.url.rstrip("/") + UPSERT + "?options=update"
        self.rejected_entities = 0

    def connect(self):
        headers = {"Content-Type": "application/ld+json", "Accept": "application/json"}
        if self.config.tenant:
            headers["NGSILD-Tenant"] = self.config.tenant
        return aiohttp.ClientSession(headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=self.config.timeout_s))

    def entities(self, rows):
        """The newest state of each entity in these records: a context broker holds current
        state, so older readings of an entity in the same rows would only be overwritten.
        Attributes merge, the newest value of each winning: a fire alarm and a reading of
        one container both reach it."""
        found = []
        for seq, key, device_id, kind, received, body_text in rows:
            entry = self.registry.by_id.get(device_id)
            if entry is None:
                continue
            body = json.loads(body_text)
            entity = to_entity(body, entry.device, co2_entity=self.config.co2_entity,
                               context=self.config.context)
            if entity is None:
                continue
            found.append((body["observed"], seq, entity))
        newest = {}
        for _, _, entity in sorted(found, key=lambda f: f[:2]):
            newest.setdefault(entity["id"], {}).update(entity)
        return list(newest.values())

    def chunks(self, entities):
        chunk, size = [], 2
        for e in entities:
            n = len(json.dumps(e, separators=(",", ":"))) + 1
            if chunk and (len(chunk) >= self.config.batch_max_entities
                          or size + n > self.config.batch_max_bytes):
                yield chunk
                chunk, size = [], 2
            chunk.append(e)
            size += n
        if chunk:
            yield chunk

    async def send(self, session, rows):
        for chunk in self.chunks(self.entities(rows)):
            await self._upsert(session, chunk)

    async def _upsert(self, session, chunk):
        data = json.dumps(chunk, separators=(",", ":"))
        async with session.post(self.url, data=data) as r:
            status = r.status
            text = await r.text()
        if status in (200, 201, 204):
            return
        if status == 207:
            try:
                errors = json.loads(text).get("errors", [])
            except ValueError:
                errors = []
            for err in errors:
                self.rejected_entities += 1
                event(log, logging.WARNING, "ngsi_ld_entity_rejected",
                      device=str(err.get("entityId", "")).rsplit(":", 1)[-1],
                      entity=err.get("entityId"), reason=json.dumps(err.get("error")))
            return
        if status == 413:
            if len(chunk) == 1:
                self._skip(chunk, status, "a single entity is too large for the broker")
                return
            half = len(chunk) // 2
            await self._upsert(session, chunk[:half])
            await self._upsert(session, chunk[half:])
            return
        if status in (408, 429) or status >= 500:
            raise TransientError("context broker answered %d: %s" % (status, text[:200]))
        self._skip(chunk, status, text[:300])

    def _skip(self, chunk, status, reason):
        # Sending the same request again would fail the same way and block the outbox.
        for e in chunk:
            self.rejected_entities += 1
            event(log, logging.ERROR, "ngsi_ld_entity_rejected", device=e["id"].rsplit(":", 1)[-1],
                  entity=e["id"], status=status, reason=reason)
