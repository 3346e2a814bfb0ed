"""Sensing accuracy on virtual boards, one module per sensor kind. Each module defines
run(days) -> [(metric, measured, target)]; `python -m bench.sensing` prints them all."""
