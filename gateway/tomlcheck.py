# Reading TOML files with errors that name the file, the line and the field.
# tomllib reports a line only for syntax errors; for a bad value we find the line of the key
# ourselves by walking the table headers, which is exact for the plain layouts our files use
# (one key per line, [table], [[array]] and [array.sub] headers, inline tables on one line).
import re
import tomllib

from gateway.errors import ConfigError

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_AT = re.compile(r"\s*\(at line (\d+), column \d+\)\s*$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)\s*=""")


def _unquote(name):
    return name[1:-1] if name[:1] in "\"'" else name


def locate(text, table, key=None):
    """The 1-based line of `key` in `table` (a tuple such as ("mqtt",) or ("device", 3,
    "settings")), or of the table's header when the key is absent; None if not found."""
    counts = {}
    current = ()
    header_line = None
    for number, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line)
        if m:
            parts = tuple(_unquote(p.strip()) for p in m.group(2).split("."))
            if m.group(1) == "[[":
                counts[parts] = counts.get(parts, -1) + 1
                current = parts + (counts[parts],)
            else:
                # [device.settings] after [[device]] belongs to the newest device.
                for n in range(len(parts) - 1, 0, -1):
                    if parts[:n] in counts:
                        current = parts[:n] + (counts[parts[:n]],) + parts[n:]
                        break
                else:
                    current = parts
            if current == tuple(table):
                header_line = number
            continue
        if key is not None and current == tuple(table):
            k = _KEY.match(line)
            if k and _unquote(k.group(1)) == key:
                return number
    return header_line


def load(path):
    """(text, data) of a TOML file; a syntax error becomes a ConfigError with its line."""
    try:
        text = open(path, encoding="utf-8").read()
    except FileNotFoundError:
        raise ConfigError(path, None, None, "file not found") from None
    except OSError as e:
        raise ConfigError(path, None, None, "cannot read: %s" % e.strerror) from None
    except UnicodeDecodeError as e:
        raise ConfigError(path, None, None, "not UTF-8 text (%s)" % e.reason) from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # Python 3.14 has e.lineno; before, the line is only in the message.
        msg = str(e)
        line = getattr(e, "lineno", None)
        m = _AT.search(msg)
        if m:
            line = line or int(m.group(1))
            msg = msg[:m.start()].rstrip()
        raise ConfigError(path, line, None, "TOML syntax error: %s" % msg) from None


class Table:
    """Typed access to one TOML table, raising ConfigError that names file, line and field.
    Every key must be read (or listed as known) before `done()`, which rejects unknown keys:
    a misspelt option is an error, not silently ignored."""

    def __init__(self, path, text, data, where=(), label=None):
        self.path, self.text, self.where = path, text, tuple(where)
        self.label = label or ".".join(str(w) for w in where)
        if not isinstance(data, dict):
            raise self.error(None, "must be a table")
        self.data = data
        self._read = set()

    def field(self, key):
        return "%s.%s" % (self.label, key) if self.label else key

    def error(self, key, message):
        field = self.field(key) if key is not None else (self.label or None)
        return ConfigError(self.path, self._line(key), field, message)

    def _line(self, key):
        # The key's own line; for an inline table (location = {...}) the line that opens
        # it; else the table's header.
        if key is not None:
            line = locate(self.text, self.where, key)
            if line is not None:
                return line
        for n in range(len(self.where), 0, -1):
            parent, name = self.where[:n - 1], self.where[n - 1]
            if isinstance(name, str):
                line = locate(self.text, parent, name)
                if line is not None:
                    return line
            line = locate(self.text, self.where[:n])
            if line is not None:
                return line
        return None

    def has(self, key):
        return key in self.data

    def get(self, key, kind, default=None, *, required=False, check=None, expect=None):
        """The value of key, checked to be of `kind` (a type or tuple of types) and, when
        `check` is given, check(value) true; `expect` words the requirement for errors."""
        self._read.add(key)
        if key not in self.data:
            if required:
                raise self.error(None, "missing required field %r" % key)
            return default
        value = self.data[key]
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, float, (int, float)))
        if ok and check is not None:
            ok = check(value)
        if not ok:
            raise self.error(key, "expected %s, got %r" % (expect or _type_name(kind), value))
        return value

    def choice(self, key, options, default=None, **kw):
        return self.get(key, str, default, check=lambda v: v in options,
                        expect="one of %s" % ", ".join(repr(o) for o in options), **kw)

    def sub(self, key, label=None):
        """The sub-table `key` (an empty one when absent)."""
        self._read.add(key)
        data = self.data.get(key, {})
        where = self.where + (key,)
        if not isinstance(data, dict):
            raise self.error(key, "must be a table")
        return Table(self.path, self.text, data, where, label or self.field(key))

    def done(self):
        unknown = [k for k in self.data if k not in self._read]
        if unknown:
            raise self.error(unknown[0], "unknown field (known: %s)"
                             % ", ".join(sorted(self._read)))


def _type_name(kind):
    if isinstance(kind, tuple):
        return " or ".join(_type_name(k) for k in kind)
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            list: "an array", dict: "a table"}.get(kind, kind.__name__)
