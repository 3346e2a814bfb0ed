# Errors the gateway raises about its own inputs (config, inventory, store file). Frame errors
# come from protocol/ and are counted, never raised out of the pipeline.


class ConfigError(ValueError):
    """A config or inventory file that cannot be used. The message names the file, the line
    (when known) and the field, so an operator can go straight to it."""

    def __init__(self, path, line, field, message):
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        where = self.path if line is None else "%s:%d" % (self.path, line)
        super().__init__("%s: %s: %s" % (where, field, message) if field else
                         "%s: %s" % (where, message))


class StoreError(ValueError):
    """The store file cannot be used (not SQLite, damaged, written by a newer gateway); the
    message names the file."""

    def __init__(self, path, message):
        self.path = str(path)
        super().__init__("%s: %s" % (path, message))
