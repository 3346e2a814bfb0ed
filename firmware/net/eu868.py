# The EU868 channel plan as the node uses it, and the duty-cycle budget of each sub-band.
# Pure functions on plain numbers, so the same code is tested on CPython and MicroPython;
# the clock is passed in (lora.py uses the RTC clock, which keeps running in deep sleep).
#
# The rule kept here is the strict reading of EN 300 220-2: after a transmission of
# airtime T the whole sub-band stays silent for T x (1/dc - 1) (protocol.airtime.off_time_ms).
# That never exceeds the duty cycle over any observation window, the hour included.
#
# The regional figures below are those of protocol/airtime.py (the reference, with its
# sources); the node keeps this small copy so that neither its config check nor its link
# loads the whole airtime module into a 96 KB heap. The tests hold the two equal.

DEFAULT_CHANNELS_HZ = (868100000, 868300000, 868500000)  # RP002 EU863-870 default channels
# EN 300 220-2 / (EU) 2017/1483 sub-bands open to general use: (name, low, high, duty cycle).
SUB_BANDS = (
    ("863.0-865.0", 863000000, 865000000, 0.001),
    ("865.0-868.0", 865000000, 868000000, 0.01),
    ("868.0-868.6", 868000000, 868600000, 0.01),
    ("868.7-869.2", 868700000, 869200000, 0.001),
    ("869.4-869.65", 869400000, 869650000, 0.1),
    ("869.7-870.0", 869700000, 870000000, 0.01),
)
# RP002 EU863-870: the largest PHY payload per (spreading factor, bandwidth), DR0..DR6.
_MAX_PAYLOAD = {(12, 125000): 64, (11, 125000): 64, (10, 125000): 64, (9, 125000): 128,
                (8, 125000): 255, (7, 125000): 255, (7, 250000): 255}
BANDWIDTHS_HZ = (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)
# The nominal bandwidths below 62.5 kHz are fractions of the 32 MHz crystal (7.8 is 7.8125).
_EXACT_BW_HZ = {7800: 7812.5, 10400: 125000 / 12, 15600: 15625.0, 20800: 125000 / 6,
                31250: 31250.0, 41700: 125000 / 3, 62500: 62500.0, 125000: 125000.0,
                250000: 250000.0, 500000: 500000.0}
# Symbols from the end of the preamble until the explicit header has been received: the
# 4.25 symbols of sync word and delimiter, then the header in the first 8 payload symbols
# (SX1276 datasheet 4.1.1.6: the header goes out at coding rate 4/8 in those symbols).
_HEADER_SYMBOLS_X4 = 49
_LDRO_SYMBOL_MS = 16  # datasheet 4.1.1.6: low data rate optimisation from 16 ms symbols


def check_channel(freq_hz, bw_hz):
    """The sub-band tuple of a channel, or ValueError if the channel is not wholly inside one
    sub-band open to general use."""
    if bw_hz not in BANDWIDTHS_HZ:
        raise ValueError("bandwidth %r Hz is not one of %s" % (bw_hz, BANDWIDTHS_HZ))
    band = sub_band(freq_hz)
    half = bw_hz // 2
    if freq_hz - half < band[1] or freq_hz + half > band[2]:
        raise ValueError("channel %d Hz (%d Hz wide) crosses the edge of sub-band %s"
                         % (freq_hz, bw_hz, band[0]))
    return band


def sub_band(freq_hz):
    """(name, low_hz, high_hz, duty_cycle) of the sub-band holding a centre frequency."""
    for band in SUB_BANDS:
        if band[1] <= freq_hz < band[2]:
            return band
    raise ValueError("freq_hz %r is in no EU868 sub-band open to general use "
                     "(863-870 MHz, except the alarm bands)" % (freq_hz,))


def sub_bands(channels):
    """{channel: (sub-band name, duty cycle)}, what Budget needs to know of each channel."""
    plan = {}
    for freq in channels:
        band = sub_band(freq)
        plan[freq] = (band[0], band[3])
    return plan


def symbol_ms(sf, bw_hz):
    return (1 << sf) * 1000 / _EXACT_BW_HZ[bw_hz]


def time_on_air_ms(length, sf, bw_hz, cr, preamble):
    """Airtime of one packet as this link sends it (SX1276 datasheet 4.1.1.7): explicit
    header, CRC on; cr is the denominator of the coding rate (5..8 for 4/5..4/8)."""
    symbol = symbol_ms(sf, bw_hz)
    de = 1 if symbol >= _LDRO_SYMBOL_MS else 0
    bits = 8 * length - 4 * sf + 28 + 16
    blocks = -(-bits // (4 * (sf - 2 * de)))
    return (preamble + 4.25 + 8 + max(blocks * cr, 0)) * symbol


def snr_limit_db(sf):
    """The lowest SNR at which the SX1276 still demodulates this spreading factor
    (datasheet table 13: -7.5 dB at SF7, 2.5 dB less per step, -20 dB at SF12)."""
    return -7.5 - 2.5 * (sf - 7)


def max_payload(sf, bw_hz):
    """The largest frame EU868 allows at this spreading factor and bandwidth."""
    try:
        return _MAX_PAYLOAD[(sf, bw_hz)]
    except KeyError:
        raise ValueError("SF%d at %r Hz is not an EU868 data rate" % (sf, bw_hz))


class Budget:
    """When each sub-band may be used again, as {band name: time in ms} on the caller's
    clock. `open_at` is the state to keep across deep sleep; `bands` is sub_bands() of the
    channels in use (looked up when not given)."""

    def __init__(self, open_at=None, bands=None):
        self.open_at = dict(open_at or {})
        self._bands = bands

    def _band(self, freq_hz):
        if self._bands is None:
            self._bands = {}
        if freq_hz not in self._bands:
            self._bands.update(sub_bands([freq_hz]))
        return self._bands[freq_hz]

    def wait_ms(self, freq_hz, now_ms):
        """How long this channel's sub-band stays closed from now (0: open)."""
        band = self._band(freq_hz)[0]
        return max(0, self.open_at.get(band, 0) - now_ms)

    def usable(self, channels, now_ms):
        """The channels whose sub-band is open now, in the given order."""
        return [f for f in channels if self.wait_ms(f, now_ms) == 0]

    def soonest_ms(self, channels, now_ms):
        """How long until at least one of the channels may be used."""
        return min(self.wait_ms(f, now_ms) for f in channels)

    def spend(self, freq_hz, airtime_ms, start_ms):
        """Book a transmission that starts at start_ms (at the latest): its sub-band closes
        until the end of the transmission plus the off time its duty cycle demands."""
        name, duty = self._band(freq_hz)
        self.open_at[name] = start_ms + _up(airtime_ms + _off_ms(airtime_ms, duty))

    def ended(self, freq_hz, airtime_ms, end_ms):
        """Book again once the transmission is over, from when it ended (at the latest): the
        off time then counts from the real end, however late the radio started."""
        name, duty = self._band(freq_hz)
        self.open_at[name] = end_ms + _up(_off_ms(airtime_ms, duty))


def _off_ms(airtime_ms, duty):
    return airtime_ms * (1 / duty - 1)  # as protocol.airtime.off_time_ms


def _up(ms):
    # Whole ms, rounded up (plus the ms a clock read in whole ms may lag): rounding never
    # favours the sender.
    return int(ms) + 2


def pick_channel(channels, budget, now_ms, rand):
    """One of the usable channels (None if none is): rand, any non-negative integer, picks
    among them so uplinks spread over the channels."""
    usable = budget.usable(channels, now_ms)
    if not usable:
        return None
    return usable[rand % len(usable)]


def rx_timing(delay_ms, margin_ms, slack_ms, sf, bw_hz, cr, preamble):
    """The receive window after an uplink, in ms from the end of the uplink:
    (start listening, give up unless a header has come by then, give up in any case).
    The gateway starts its downlink at delay_ms; its header is in by the end of the preamble
    and 12.25 more symbols; the longest packet is over by delay_ms + its airtime."""
    symbol = symbol_ms(sf, bw_hz)
    header = delay_ms + (4 * preamble + _HEADER_SYMBOLS_X4) * symbol / 4 + slack_ms
    longest = delay_ms + time_on_air_ms(255, sf, bw_hz, cr, preamble) + slack_ms
    return max(0, delay_ms - margin_ms), int(header) + 1, int(longest) + 1
