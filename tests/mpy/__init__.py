def seal_each_kind_reference():
    """What tests/mpy/seal_each_kind.py must print, computed on CPython."""
    import importlib.util
    from pathlib import Path

    from protocol import frame, schema
    spec = importlib.util.spec_from_file_location(
        "seal_each_kind_data", Path(__file__).parent / "seal_each_kind.py")
    source = (Path(__file__).parent / "seal_each_kind.py").read_text()
    readings = source.split("READINGS = ", 1)[1].split("\n)\n", 1)[0] + "\n)"
    keys = frame.Keys(bytes(range(16)))
    lines = []
    for i, (kind, reading) in enumerate(eval(readings, {"schema": schema})):
        sealed = frame.seal(keys, kind, 0x12AB34, 70000 + i, schema.encode(kind, reading))
        lines.append("%s %s" % (schema.kind_name(kind), sealed.hex()))
    return lines
