import argparse
import importlib

from rich.console import Console
from rich.table import Table

from hil_tests.virtual.kits import KINDS


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.sensing",
                                     description="Sensing accuracy per kind, on virtual boards")
    parser.add_argument("--days", type=float, default=1.0, help="simulated days per kind")
    parser.add_argument("kinds", nargs="*", default=list(KINDS))
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 120))
    table = Table(title="Sensing on virtual boards (%.3g simulated day(s) per kind)" % args.days)
    for col in ("kind", "metric", "measured", "target"):
        table.add_column(col)
    for kind in args.kinds:
        try:
            module = importlib.import_module("bench.sensing." + kind)
        except ModuleNotFoundError:
            table.add_row(kind, "(no bench for this kind yet)", "", "")
            continue
        for metric, measured, target in module.run(args.days):
            table.add_row(kind, metric, measured, target)
    console.print(table)


if __name__ == "__main__":
    main()
