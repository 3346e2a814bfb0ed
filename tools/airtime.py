"""tools/airtime: how long a LoRa packet is on air, and what EU868 makes of it.

  tools/airtime --sf 9 --bw 125 --cr 4/5 --payload 25 [--preamble 8] [--freq 868.1]
                [--no-crc] [--implicit] [--ldro auto|on|off] [--json]

Prints the time on air, the symbol time, the EU868 data rate (if SF/BW is one) and whether
the payload fits that data rate's limit, the duty-cycle sub-band of --freq and the time the
transmitter must then stay silent on it. The payload is the whole PHY payload (a cityedge
frame's length). Bad arguments: one line on stderr and exit status 2.
"""
import argparse
import json
import sys

from protocol import airtime


class UsageError(Exception):
    pass


def parse_cr(text):
    """'4/5'..'4/8' -> 1..4."""
    top, _, bottom = text.partition("/")
    if top.strip() != "4" or bottom.strip() not in ("5", "6", "7", "8"):
        raise UsageError("--cr must be 4/5, 4/6, 4/7 or 4/8, got %r" % text)
    return int(bottom) - 4


def compute(args):
    cr = parse_cr(args.cr)
    ldro = {"auto": None, "on": True, "off": False}[args.ldro]
    explicit = not args.implicit
    crc = not args.no_crc
    toa = airtime.time_on_air_ms(args.payload, args.sf, args.bw, cr, args.preamble,
                                 explicit, crc, ldro)
    freq_hz = int(round(args.freq * 1e6))
    try:
        name, _, _, duty = airtime.eu868_sub_band(freq_hz)
    except ValueError:
        raise UsageError("--freq %s MHz is in no EU868 sub-band open to general use "
                         "(863-870 MHz without the alarm bands)" % args.freq) from None
    try:
        dr = airtime.eu868_dr(args.sf, args.bw)
        max_payload = airtime.eu868_max_payload(dr)
    except ValueError:
        dr = max_payload = None
    off = airtime.off_time_ms(toa, duty)
    return {
        "sf": args.sf,
        "bw_khz": args.bw,
        "cr": "4/%d" % (cr + 4),
        "payload_bytes": args.payload,
        "preamble": args.preamble,
        "explicit_header": explicit,
        "crc": crc,
        "ldro": airtime.low_data_rate_optimize(args.sf, args.bw) if ldro is None else ldro,
        "airtime_ms": round(toa, 3),
        "symbol_time_ms": round(airtime.symbol_time_ms(args.sf, args.bw), 3),
        "eu868_dr": dr,
        "eu868_max_payload": max_payload,
        "fits_eu868": None if dr is None else args.payload <= max_payload,
        "freq_mhz": args.freq,
        "sub_band_mhz": name,
        "duty_cycle": duty,
        "off_time_ms": round(off, 3),
        "off_time_s": round(off / 1000, 3),
    }


def show(r):
    from rich.console import Console
    from rich.table import Table

    table = Table(title="LoRa SF%d / %s kHz / CR %s, %d bytes"
                  % (r["sf"], r["bw_khz"], r["cr"], r["payload_bytes"]), show_header=False)
    table.add_column()
    table.add_column(justify="right")
    table.add_row("time on air", "%.2f ms" % r["airtime_ms"])
    table.add_row("symbol time", "%.3f ms" % r["symbol_time_ms"])
    table.add_row("low data rate optimisation", "on" if r["ldro"] else "off")
    if r["eu868_dr"] is None:
        table.add_row("EU868 data rate", "none (not an EU868 SF/BW)")
    else:
        table.add_row("EU868 data rate", "DR%d" % r["eu868_dr"])
        table.add_row("EU868 payload limit", "%d bytes: %s" % (
            r["eu868_max_payload"], "fits" if r["fits_eu868"] else "TOO LONG"))
    table.add_row("sub-band", "%s MHz (%.3g%% duty cycle)" % (r["sub_band_mhz"],
                                                               r["duty_cycle"] * 100))
    table.add_row("silent afterwards", "%.2f ms = %.2f s" % (r["off_time_ms"], r["off_time_s"]))
    Console().print(table)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tools/airtime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sf", type=int, required=True, help="spreading factor 6..12")
    parser.add_argument("--bw", type=float, default=125.0,
                        help="bandwidth in kHz (default 125)")
    parser.add_argument("--cr", default="4/5", help="coding rate 4/5..4/8 (default 4/5)")
    parser.add_argument("--payload", type=int, required=True, help="PHY payload bytes 0..255")
    parser.add_argument("--preamble", type=int, default=8, help="preamble symbols (default 8)")
    parser.add_argument("--freq", type=float, default=868.1,
                        help="channel centre in MHz (default 868.1)")
    parser.add_argument("--no-crc", action="store_true", help="no payload CRC")
    parser.add_argument("--implicit", action="store_true", help="implicit header mode")
    parser.add_argument("--ldro", choices=("auto", "on", "off"), default="auto",
                        help="low data rate optimisation (default: on when a symbol >= 16 ms)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    # Whole-number bandwidths print as "125", not "125.0".
    if args.bw == int(args.bw):
        args.bw = int(args.bw)
    try:
        result = compute(args)
    except (UsageError, ValueError) as e:
        print("tools/airtime: error: %s" % e, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
