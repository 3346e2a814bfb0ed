# Errors raised by protocol/. One family so a caller can catch all of them as ProtocolError,
# or as ValueError. MicroPython cannot give an exception two built-in bases, so the family
# hangs under ValueError and each error says which layer raised it.


class ProtocolError(ValueError):
    pass


class DecodeError(ProtocolError):
    """Malformed CBOR: the bytes can never be valid."""


class TruncatedError(DecodeError):
    """The input ends before the data item does (more bytes would be needed)."""


class EncodeError(ProtocolError):
    """A value that the codec, a schema or a frame cannot represent."""


class FrameError(ProtocolError):
    """A frame that is not acceptable: wrong size, version, direction, kind."""


class MICError(FrameError):
    """The message integrity code does not match: wrong key or altered bytes."""


class ReplayError(FrameError):
    """The frame counter was already used (or is too far in the past)."""


class SchemaError(ProtocolError):
    """A body that does not match its message kind: wrong shape, field out of range."""
