# From output records to normalized NGSI-LD entities of the FIWARE Smart Data Models:
# fill -> WasteContainer, parking -> ParkingSpot, co2 -> IndoorEnvironmentObserved (or
# AirQualityObserved), luminaire -> Streetlight. Every measured property carries observedAt;
# units use UN/CEFACT codes. Records of other kinds (status, event, ack) have no entity.

ENTITY_TYPES = {"fill": "WasteContainer", "parking": "ParkingSpot",
                "co2": "IndoorEnvironmentObserved", "luminaire": "Streetlight"}


def entity_id(entity_type, device_id):
    return "urn:ngsi-ld:%s:%s" % (entity_type, device_id)


def _prop(value, observed, unit=None):
    p = {"type": "Property", "value": value, "observedAt": observed}
    if unit:
        p["unitCode"] = unit
    return p


def _put(entity, name, value, observed, unit=None):
    if value is not None:
        entity[name] = _prop(value, observed, unit)


def to_entity(body, device, *, co2_entity="IndoorEnvironmentObserved", context=None):
    """The entity for one record (a parsed record body) of a device, or None."""
    kind = body["kind"]
    v, t = body["values"], body["observed"]
    if kind == "event":
        # A fire alarm (and its end) is a fill node's event, not part of a reading: it is
        # the container's safety status.
        if device.kind != "fill" or v["event"] not in ("fire", "fire_clear"):
            return None
        etype = ENTITY_TYPES["fill"]
    else:
        etype = co2_entity if kind == "co2" else ENTITY_TYPES.get(kind)
    if etype is None:
        return None
    e = {"id": entity_id(etype, device.id), "type": etype}
    if device.location:
        e["location"] = {"type": "GeoProperty", "value": {
            "type": "Point", "coordinates": [device.location.lon, device.location.lat]}}
    if device.address:
        e["address"] = {"type": "Property", "value": {"streetAddress": device.address}}
    if kind == "event":
        e["status"] = _prop("burning" if v["event"] == "fire" else "ok", t)
    elif kind == "fill":
        _put(e, "fillingLevel", v["fill_level"], t, "C62")  # a fraction 0..1, not %
        _put(e, "temperature", v["temperature_c"], t, "CEL")
    elif kind == "parking":
        occupied = v["occupied"]
        e["status"] = _prop("unknown" if occupied is None else
                            ("occupied" if occupied else "free"), t)
        e["category"] = {"type": "Property",
                         "value": [device.settings.get("category", "onStreet")]}
        e["refParkingSite"] = {"type": "Relationship", "object": entity_id(
            "ParkingSite", device.settings.get("parking_site", "unassigned"))}
    elif kind == "co2":
        _put(e, "co2", v["co2_ppm"], t, "59")  # 59: ppm
        _put(e, "temperature", v["temperature_c"], t, "CEL")
        _put(e, "relativeHumidity", v["relative_humidity"], t, "C62")
        e["dateObserved"] = {"type": "Property", "value": t}
    elif kind == "luminaire":
        lamp = v["lamp"]
        e["status"] = _prop("defectiveLamp" if lamp == "failed" else "ok", t)
        if lamp in ("on", "off"):
            _put(e, "powerState", lamp, t)
        _put(e, "illuminanceLevel", v["dimming_level"], t, "C62")
        _put(e, "powerConsumption", v["power_w"], t, "WTT")
    if context:
        e["@context"] = [context]
    return e


def reduce_to_key_values(entity):
    """Normalized NGSI-LD -> keyValues (what the Smart Data Models JSON Schemas describe):
    Property/GeoProperty give their value, Relationship its object, sub-properties go."""
    out = {}
    for name, attr in entity.items():
        if name in ("id", "type", "@context") or not isinstance(attr, dict):
            out[name] = attr
        elif attr.get("type") == "Relationship":
            out[name] = attr["object"]
        elif attr.get("type") == "LanguageProperty":
            out[name] = attr["languageMap"]
        elif "value" in attr:
            value = attr["value"]
            if isinstance(value, dict) and "@value" in value:
                value = value["@value"]
            out[name] = value
        else:
            out[name] = attr
    return out
