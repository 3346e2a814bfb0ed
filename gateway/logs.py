# Structured logs: one line per event, "event key=value ..." as text or one JSON object.
# Every line about a frame carries the device id (or "unknown") and the reason.
import json
import logging
import sys
import time


def _text(v):
    v = "%s" % (v,)
    return json.dumps(v) if (not v or " " in v or '"' in v or "=" in v) else v


def event(logger, level, name, **fields):
    """Log event `name` with fields; cheap when the level is disabled. The message reads
    "name key=value ..." in any handler; JsonFormatter writes the fields as JSON."""
    if logger.isEnabledFor(level):
        text = " ".join([name] + ["%s=%s" % (k, _text(v)) for k, v in fields.items()])
        logger.log(level, "%s", text, extra={"event": name, "fields": fields})


class TextFormatter(logging.Formatter):
    def format(self, record):
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = "%s.%03dZ %s %s" % (ts, record.msecs, record.levelname.lower(), record.getMessage())
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record):
        out = {"ts": record.created, "level": record.levelname.lower(),
               "logger": record.name, "event": getattr(record, "event", record.getMessage())}
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(fmt="text", level="info", stream=None):
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("gateway")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    for noisy in ("aiohttp.access", "mqtt"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
