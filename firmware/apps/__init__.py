# One app per sensor kind: it turns driver values into a reading and events.


def create(cfg, state, hw):
    kind = cfg["kind"]
    if kind == "fill":
        from apps.fill import FillApp
        return FillApp(cfg, state, hw)
    raise ValueError("no app for kind %r on this firmware" % kind)
