"""tools/battery: how long a node's battery lasts, from the energy account its status frames
report (cycle_uah: the mean charge of one cycle, sleep included).

  tools/battery --capacity-mah 3400 --interval 600 --cycle-uah 24.4
  tools/battery --capacity-mah 3400 --kind fill     # measure cycle_uah on a virtual board

The estimate keeps `usable` of the rated capacity (cold, cut-off voltage, ageing) and
subtracts the cell's self-discharge. The currents behind cycle_uah are the config's
currents_ma (firmware/node/config.py), which should be measured on the real board.
"""
import argparse
import json
import sys


def life_days(capacity_mah, cycle_uah, interval_s, usable=0.8, self_discharge_pct_year=3.0):
    """Days until the usable charge is spent by the cycles and the self-discharge."""
    if capacity_mah <= 0 or cycle_uah <= 0 or interval_s <= 0:
        raise ValueError("capacity, cycle charge and interval must be positive")
    per_day_mah = cycle_uah / 1000 * 86400 / interval_s
    per_day_mah += capacity_mah * self_discharge_pct_year / 100 / 365
    return capacity_mah * usable / per_day_mah


def measured_cycle_uah(kind, interval_s, cycles=13):
    """Run a node of this kind on a virtual board and read cycle_uah from its status."""
    import shutil
    import tempfile
    from pathlib import Path

    from hil_tests.virtual import kits
    from hil_tests.virtual.board import VirtualBoard, deploy
    from hil_tests.virtual.receiver import Receiver

    key, addr = bytes(range(16)), 0x0B0001
    work = Path(tempfile.mkdtemp(prefix="cityedge-battery-"))
    rx = Receiver({addr: key})
    try:
        flash = deploy(work / "flash", config=kits.node_config(
            kind, addr=addr, gateway_port=rx.port, interval_s=interval_s), key=key)
        board = VirtualBoard(flash, name=kind, log_dir=work, models=kits.kit(kind).models())
        board.run(cycles)
        board.close()
        statuses = [m for _, _, k, m in rx.accepted if k == "status"]
        if len(statuses) < 2:
            raise RuntimeError("the board sent no status after a full series of cycles")
        return statuses[-1]["cycle_uah"]
    finally:
        rx.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tools/battery", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capacity-mah", type=float, required=True)
    parser.add_argument("--interval", type=int, default=600, help="seconds between cycles")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--cycle-uah", type=float, help="from a status frame")
    source.add_argument("--kind", help="measure on a virtual board of this kind")
    parser.add_argument("--usable", type=float, default=0.8)
    parser.add_argument("--self-discharge", type=float, default=3.0, help="%% per year")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        cycle = args.cycle_uah if args.cycle_uah is not None else measured_cycle_uah(
            args.kind, args.interval)
        days = life_days(args.capacity_mah, cycle, args.interval, args.usable,
                         args.self_discharge)
    except (ValueError, RuntimeError) as e:
        print("tools/battery: %s" % e, file=sys.stderr)
        return 1
    result = {"cycle_uah": round(cycle, 2), "interval_s": args.interval,
              "capacity_mah": args.capacity_mah, "days": round(days, 1),
              "years": round(days / 365.25, 2)}
    if args.json:
        print(json.dumps(result))
    else:
        print("%.2f µAh per cycle every %d s on %.0f mAh (%.0f %% usable): %.0f days (%.1f years)"
              % (cycle, args.interval, args.capacity_mah, args.usable * 100, days,
                 days / 365.25))
    return 0


if __name__ == "__main__":
    sys.exit(main())
