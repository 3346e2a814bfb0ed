# When a LoRa node listens for downlinks (firmware/README.md, "Receive windows"): once,
# rx_delay after its uplink ended; when the receipt announces commands, again rx_delay after
# the end of each downlink. Receivers count time in 32-bit microseconds that wrap (the
# packet forwarder's and the serial bridge's tmst), so the schedule is in those units.
from protocol import airtime


def schedule_us(tmst, sizes, *, sf, bw_khz, cr, rx_delay_us):
    """The start time of each downlink of one receive window (mod 2^32): the uplink ended
    at tmst; sizes are the downlink frames' lengths in the order they are sent; cr is
    1..4 for 4/5..4/8."""
    out, start = [], tmst + rx_delay_us
    for size in sizes:
        out.append(start & 0xFFFFFFFF)
        start += round(airtime.time_on_air_ms(size, sf, bw_khz, cr) * 1000) + rx_delay_us
    return out


def cr_index(codr):
    """"4/5" -> 1 ... "4/8" -> 4."""
    return int(codr[2]) - 4
