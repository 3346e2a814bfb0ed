# Opening a downlink frame, the same for every transport: a frame that fails its MIC,
# replays, or is not for this node is dropped, never obeyed.
from protocol import counters, frame, schema
from protocol.errors import ProtocolError


def open_downlink(data, keys, addr, window, link_name):
    """(kind, message dict) of a downlink for `addr`, or None if it must be dropped.
    `window` is the downlink ReplayWindow; it accepts the counter only once the MIC holds."""
    try:
        header = frame.parse_header(data)
        if header.direction != frame.DOWN or header.addr != addr:
            return None
        fcnt = counters.full_counter(window.newest, header.fcnt_low)
        window.check(fcnt)
        body = frame.unseal(keys, data, fcnt)
        window.accept(fcnt)
        return header.kind, schema.decode(header.kind, body)
    except ProtocolError as e:
        print("%s: downlink dropped: %s" % (link_name, e))
        return None
