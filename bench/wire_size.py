"""Bytes on air for one realistic reading of each kind: cityedge (authenticated, encrypted,
counter included) next to LoRaWAN framing with Cayenne LPP, SenML-CBOR and JSON payloads;
airtime at SF7, SF9 and SF12 (BW 125 kHz, CR 4/5); the batch cost per reading; and the
smallest MicroPython heap that encodes, encrypts and MICs one reading (.mpy).

    .venv/bin/python -m bench.wire_size [--no-heap]
"""
import argparse
import json
import tempfile

import cbor2
from rich.console import Console
from rich.table import Table

from protocol import airtime, batch, frame, schema
from tools import mpybuild
from tools.samples import DEMO_ADDR, DEMO_KEY, READINGS

# LoRaWAN 1.0 framing around an application payload: MHDR 1, DevAddr 4, FCtrl 1, FCnt 2,
# FPort 1, MIC 4 (no FOpts).
LORAWAN_OVERHEAD = 13

# Cayenne LPP: each value is channel (1) + type (1) + data. (type, data bytes, multiplier)
# per the LPP type table (IPSO-based, with the common extended types).
LPP = {
    "presence": (102, 1, 1), "digital": (0, 1, 1), "percentage": (120, 1, 1),
    "temperature": (103, 2, 10), "humidity": (104, 1, 2), "analog": (2, 2, 100),
    "generic": (100, 4, 1), "distance": (130, 4, 1000), "concentration": (125, 2, 1),
    "power": (128, 2, 1), "energy": (131, 4, 1000),
}
# How each cityedge field is best carried in LPP: (LPP type, factor from our unit).
LPP_FIELDS = {
    schema.FILL: {"level_pct": ("percentage", 1), "distance_mm": ("distance", 0.001),
                  "temperature_c": ("temperature", 1), "hours_to_full": ("generic", 1),
                  "fault": ("digital", 1)},
    schema.PARKING: {"occupied": ("presence", 1), "minutes": ("generic", 1),
                     "field_ut": ("analog", 1), "overstay": ("digital", 1),
                     "fault": ("digital", 1)},
    schema.CO2: {"co2_ppm": ("concentration", 1), "temperature_c": ("temperature", 1),
                 "humidity_pct": ("humidity", 1), "fault": ("digital", 1)},
    schema.LUMINAIRE: {"power_w": ("power", 1), "energy_wh": ("energy", 0.001),
                       "level_pct": ("percentage", 1), "burn_h": ("generic", 1),
                       "fault": ("digital", 1)},
}
# SenML units (RFC 8428 section 12.1 and its registry) and scale to them.
SENML = {"level_pct": ("%", 1), "distance_mm": ("m", 0.001), "temperature_c": ("Cel", 1),
         "hours_to_full": ("h", 1), "fault": (None, 1), "occupied": (None, 1),
         "minutes": ("min", 1), "field_ut": ("T", 1e-6), "overstay": (None, 1),
         "co2_ppm": ("ppm", 1), "humidity_pct": ("%RH", 1), "power_w": ("W", 1),
         "energy_wh": ("J", 3600), "burn_h": ("h", 1)}


def cayenne_lpp(kind, reading):
    out = bytearray()
    for channel, (field, (lpp_type, factor)) in enumerate(LPP_FIELDS[kind].items()):
        type_id, size, mult = LPP[lpp_type]
        raw = int(round(float(reading[field]) * factor * mult))
        out += bytes([channel, type_id]) + raw.to_bytes(size, "big", signed=raw < 0)
    return bytes(out)


def senml_cbor(kind, reading):
    # RFC 8428 section 6 labels: bn -2, n 0, u 1, v 2, vb 4.
    records = []
    for i, (field, value) in enumerate(reading.items()):
        unit, scale = SENML[field]
        record = {0: field}
        if i == 0:
            record[-2] = "urn:dev:cityedge:%06x:" % DEMO_ADDR
        if isinstance(value, bool):
            record[4] = value
        else:
            record[2] = value * scale
            if unit:
                record[1] = unit
        records.append(record)
    return cbor2.dumps(records)


def cityedge(kind, reading):
    return frame.seal(frame.Keys(DEMO_KEY), kind, DEMO_ADDR, 70000, schema.encode(kind, reading))


def size_table():
    table = Table(title="One reading on air (bytes; cityedge includes MIC, encryption, counter)")
    for col in ("kind", "cityedge", "LoRaWAN+LPP", "LoRaWAN+SenML-CBOR", "LoRaWAN+JSON",
                "cityedge SF7 ms", "SF9 ms", "SF12 ms", "LoRaWAN+LPP SF12 ms"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for kind, reading in READINGS:
        ours = len(cityedge(kind, reading))
        lpp = LORAWAN_OVERHEAD + len(cayenne_lpp(kind, reading))
        senml = LORAWAN_OVERHEAD + len(senml_cbor(kind, reading))
        text = LORAWAN_OVERHEAD + len(json.dumps(reading, separators=(",", ":")))
        table.add_row(schema.kind_name(kind), str(ours), str(lpp), str(senml), str(text),
                      *("%.1f" % airtime.time_on_air_ms(ours, sf) for sf in (7, 9, 12)),
                      "%.1f" % airtime.time_on_air_ms(lpp, 12))
    return table


def drift(kind, reading, i):
    """The i-th of a series of readings 10 minutes apart: realistic small changes."""
    r = dict(reading)
    if kind == schema.FILL:
        r.update(level_pct=min(100, r["level_pct"] + 0.5 * i), distance_mm=r["distance_mm"] - 5 * i,
                 temperature_c=r["temperature_c"] - 0.2 * i, hours_to_full=max(0, 40 - i))
    elif kind == schema.PARKING:
        r.update(minutes=r["minutes"] + 10 * i, field_ut=round(r["field_ut"] + 0.3 * (i % 3), 1),
                 overstay=i >= 1)
    elif kind == schema.CO2:
        r.update(co2_ppm=r["co2_ppm"] + 35 * i, temperature_c=r["temperature_c"] + 0.1 * i,
                 humidity_pct=r["humidity_pct"] + 0.5 * i)
    else:
        r.update(energy_wh=r["energy_wh"] + 13 * i, burn_h=r["burn_h"] + i // 6)
    return r


def batch_table():
    table = Table(title="Batches: bytes on air per reading (readings 10 minutes apart)")
    sizes = (1, 2, 3, 6, 12)
    table.add_column("kind")
    for n in sizes:
        table.add_column("n=%d" % n, justify="right")
    for kind, reading in READINGS:
        row = [schema.kind_name(kind)]
        for n in sizes:
            body = batch.encode(kind, [drift(kind, reading, i) for i in range(n)], 600, 0)
            row.append("%.1f" % ((frame.OVERHEAD + len(body)) / n))
        table.add_row(*row)
    return table


def heap_table():
    table = Table(title="Smallest MicroPython heap that encodes, encrypts and MICs one "
                  "reading (protocol/ as .mpy)")
    table.add_column("kind")
    table.add_column("smallest heap", justify="right")
    with tempfile.TemporaryDirectory() as build:
        mpybuild.build_sealer(build)
        script = mpybuild.SEALER
        base = (DEMO_KEY.hex(), "%06x" % DEMO_ADDR, "1")
        for kind, _ in READINGS:
            name = schema.kind_name(kind)
            heap = mpybuild.smallest_heap(script, [build], args=base + (name,))
            table.add_row(name, "%d bytes (%.1f KB)" % (heap, heap / 1024))
        heap = mpybuild.smallest_heap(script, [build], args=base)
        table.add_row("all four in one run", "%d bytes (%.1f KB)" % (heap, heap / 1024))
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-heap", action="store_true", help="skip the heap search")
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 120))
    console.print(size_table())
    console.print(batch_table())
    if not args.no_heap:
        console.print(heap_table())


if __name__ == "__main__":
    main()
