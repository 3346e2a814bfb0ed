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


def reply_window(receive, keys, addr, fcnt, window, link_name):
    """(delivered, [command dicts]) from one uplink's reply window. receive() gives the next
    downlink's bytes, or None once the window closed. The receipt for uplink `fcnt` says
    how many commands follow it in the same window."""
    delivered, commands = False, []
    expected = 1
    while expected > 0:
        data = receive()
        if data is None:
            break
        expected -= 1
        message = open_downlink(data, keys, addr, window, link_name)
        if message is None:
            continue
        kind, body = message
        if kind == schema.RECEIPT and body["fcnt"] == fcnt:
            delivered = True
            expected += body.get("commands") or 0
        elif kind == schema.COMMAND:
            commands.append(body)
    return delivered, commands
