# One app per sensor kind: it turns driver values into a reading and events.
#
# An app module defines `App(cfg, state, machine)` with:
#   kind                 the protocol.schema kind of its readings
#   measure(now_s)       -> (reading dict or None, [(event code, value)]); never raises:
#                        a driver error becomes a fault bit in the reading; None means
#                        "nothing worth an uplink this cycle"
#   command(name, arg)   -> an ACK result (0 ok, 2 bad argument, 3 failed), or None if the
#                        command is not this app's
# and optionally wake_pin = (pin, level) to wake from deep sleep on a pin, and for
# mains-powered nodes tick(now_ms) -> True to report at once, with tick_ms between ticks.
# `state` is a dict kept in RTC memory across deep sleep; keep it small.

_MODULES = {"fill": "apps.fill", "parking": "apps.parking", "co2": "apps.co2",
            "luminaire": "apps.luminaire"}


def create(cfg, state, machine):
    name = _MODULES.get(cfg["kind"])
    if name is None:
        raise ValueError("no app for kind %r" % cfg["kind"])
    module = __import__(name, None, None, ["App"])
    return module.App(cfg, state, machine)
