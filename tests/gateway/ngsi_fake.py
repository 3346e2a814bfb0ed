# A local NGSI-LD endpoint for the tests: answers batch upserts as the NGSI-LD API specifies
# (201 created, 204 updated, 207 with per-entity errors, 413 for a too-large batch, 5xx when
# told to) and validates every entity, reduced to keyValues, against the official FIWARE
# Smart Data Models JSON Schemas (copied in smart_data_models/).
import asyncio
import json
import pathlib
import threading

from aiohttp import web
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from gateway.forwarders.ngsi_ld_mapping import reduce_to_key_values

SDM = pathlib.Path(__file__).parent / "smart_data_models"
REF_MAP = {
    "https://smart-data-models.github.io/data-models/common-schema.json": "common/common-schema.json",
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/Environment-schema.json": "common/Environment-schema.json",
    "https://smart-data-models.github.io/dataModel.Environment/Environment-schema.json": "common/Environment-schema.json",
}


def _load(rel):
    return json.loads((SDM / rel).read_text(encoding="utf-8"))


_registry = Registry().with_resources(
    (url, Resource.from_contents(_load(path))) for url, path in REF_MAP.items())
VALIDATORS = {
    t: Draft202012Validator(_load("%s/schema.json" % t), registry=_registry,
                            format_checker=Draft202012Validator.FORMAT_CHECKER)
    for t in ("WasteContainer", "ParkingSpot", "IndoorEnvironmentObserved",
              "AirQualityObserved", "Streetlight")}


def validate(entity):
    """Schema errors of a normalized NGSI-LD entity, as strings; also checks the envelope
    (observedAt on every Property with a measured value)."""
    errors = ["%s: %s" % ("/".join(map(str, e.path)), e.message)
              for e in VALIDATORS[entity["type"]].iter_errors(reduce_to_key_values(entity))]
    for name, attr in entity.items():
        if isinstance(attr, dict) and attr.get("type") not in ("Property", "GeoProperty",
                                                               "Relationship", None):
            errors.append("%s: bad attribute type %r" % (name, attr.get("type")))
    return errors


class FakeContextBroker:
    def __init__(self, *, max_entities=None):
        self.entities = {}
        self.requests = []  # the entity lists received
        self.invalid = []  # (entity id, errors)
        self.script = []  # statuses to answer next, before behaving normally
        self.reject_ids = set()  # entity ids to answer with a 207 error
        self.max_entities = max_entities
        self.lock = threading.Lock()
        self.ready = threading.Event()

    def __enter__(self):
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    async def _main(self):
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        app = web.Application(client_max_size=16 << 20)
        app.add_routes([web.post("/ngsi-ld/v1/entityOperations/upsert", self.upsert)])
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self.ready.set()
        await self.stop.wait()
        await runner.cleanup()

    async def upsert(self, request):
        if request.content_type not in ("application/ld+json", "application/json"):
            return web.json_response({"type": "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
                                      "title": "bad content type"}, status=415)
        entities = await request.json()
        with self.lock:
            self.requests.append(entities)
            if self.script:
                status = self.script.pop(0)
                return web.json_response({"type": "https://uri.etsi.org/ngsi-ld/errors/InternalError",
                                          "title": "scripted"}, status=status)
            if self.max_entities and len(entities) > self.max_entities:
                return web.json_response({"title": "Request Entity Too Large"}, status=413)
            created, errors = [], []
            for e in entities:
                problems = validate(e)
                if problems:
                    self.invalid.append((e.get("id"), problems))
                if problems or e["id"] in self.reject_ids:
                    errors.append({"entityId": e["id"], "error": {
                        "type": "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
                        "title": "invalid entity", "detail": "; ".join(problems) or "rejected"}})
                    continue
                if e["id"] not in self.entities:
                    created.append(e["id"])
                    self.entities[e["id"]] = dict(e)
                else:
                    self.entities[e["id"]].update(e)  # options=update: merge attributes
        if errors:
            return web.json_response({"success": [e["id"] for e in entities
                                                  if e["id"] not in {x["entityId"] for x in errors}],
                                      "errors": errors}, status=207)
        if created:
            return web.json_response(created, status=201)
        return web.Response(status=204)
