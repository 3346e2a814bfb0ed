# LoRa time on air and the EU868 rules that turn it into a sending budget. Pure functions
# that run unchanged on MicroPython and CPython: the node plans its sends with them, the
# gateway and the virtual air account for airtime with the very same numbers.
#
# Sources:
#   Semtech SX1276/77/78/79 datasheet, section 4.1.1.7 "Time on air" (the same formula is in
#     AN1200.13, the LoRa Modem Designer's Guide). For SF5/SF6 the SX126x counts symbols
#     differently; this module follows the SX127x formula.
#   LoRaWAN Regional Parameters RP002-1.0.x, EU863-870: data rates and the maximum payload
#     size table for end-devices that never use a repeater.
#   ETSI EN 300 220-2 V3.2.1 and Commission Implementing Decision (EU) 2017/1483: the duty
#     cycle of each 863-870 MHz sub-band for non-specific short range devices.

# --- SX1276 datasheet 4.1.1.7 ---------------------------------------------------------------
# The preamble is followed by 4.25 symbols of sync word and start-of-frame delimiter.
_PREAMBLE_EXTRA_X4 = 17  # 4.25 symbols, counted in quarter symbols to stay in integers
# Low data rate optimisation is mandated once a symbol lasts longer than 16 ms (datasheet,
# just before 4.1.1.7). Stacks (micropython-lib, LoRaWAN) test >= 16 ms; no bandwidth of the
# modem gives exactly 16 ms, so the two readings agree.
_LDRO_SYMBOL_MS = 16

SF_MIN = 6
SF_MAX = 12
CR_MIN = 1  # 4/5
CR_MAX = 4  # 4/8
PAYLOAD_MAX = 255  # the FIFO and the header's length field are one byte
PREAMBLE_MAX = 65535  # RegPreambleMsb/Lsb

# Each bandwidth the modem offers, as the nominal figure people write and its exact value.
# The narrow ones are fractions of the 32 MHz crystal: "7.8 kHz" is really 7.8125 kHz, and
# the symbol time (hence the airtime) follows the exact value. Kept as (numerator,
# denominator) in kHz so the airtime comes out of a single division.
_BANDWIDTHS = (
    (7.8, 125, 16), (10.4, 125, 12), (15.6, 125, 8), (20.8, 125, 6), (31.25, 125, 4),
    (41.7, 125, 3), (62.5, 125, 2), (125, 125, 1), (250, 250, 1), (500, 500, 1),
)
# Spellings such as 7.81, 10.42 (the Semtech calculator's) or 41.67 match their nominal value.
_BW_TOLERANCE_KHZ = 0.05

# --- RP002-1.0.x, EU863-870 -----------------------------------------------------------------
# DR0..DR6: (spreading factor, bandwidth kHz); DR7 is FSK and has no LoRa airtime here.
EU868_DATA_RATES = ((12, 125), (11, 125), (10, 125), (9, 125), (8, 125), (7, 125), (7, 250))
# Maximum MACPayload (M) per data rate, "not repeater compatible" table. The application
# payload N is M - 8 (7-byte FHDR without FOpts, 1-byte FPort): 51, 51, 51, 115, 242, 242, 242.
EU868_MAX_MACPAYLOAD = (59, 59, 59, 123, 250, 250, 250)
# cityedge is not LoRaWAN, so what limits it is the whole PHY payload the region allows at a
# data rate: M plus the 1-byte MHDR and the 4-byte MIC.
_MHDR_MIC = 5
EU868_MAX_PHY_PAYLOAD = tuple(m + _MHDR_MIC for m in EU868_MAX_MACPAYLOAD)
# The three channels every EU868 device supports (RP002, EU863-870 default channels).
EU868_DEFAULT_CHANNELS_HZ = (868100000, 868300000, 868500000)

# --- EN 300 220-2 V3.2.1 / (EU) 2017/1483, non-specific SRD sub-bands ------------------------
# (name, low Hz, high Hz, duty cycle). 863-865 MHz is 0.1%: older tables (ERC/REC 70-03
# before its revision, some LoRaWAN servers) treat all of 863-868 MHz as 1%, which is only
# true of 865-868 MHz. The gaps (868.6-868.7, 869.2-869.4, 869.65-869.7 MHz) are reserved for
# alarms and are not for general use.
EU868_SUB_BANDS = (
    ("863.0-865.0", 863000000, 865000000, 0.001),
    ("865.0-868.0", 865000000, 868000000, 0.01),
    ("868.0-868.6", 868000000, 868600000, 0.01),
    ("868.7-869.2", 868700000, 869200000, 0.001),
    ("869.4-869.65", 869400000, 869650000, 0.1),
    ("869.7-870.0", 869700000, 870000000, 0.01),
)


def _check_int(name, value, low, high):
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError("%s must be an integer %d..%d, got %r" % (name, low, high, value))


def _bandwidth(bw_khz):
    """(numerator, denominator) of the exact bandwidth in kHz."""
    if isinstance(bw_khz, (int, float)) and not isinstance(bw_khz, bool):
        for nominal, num, den in _BANDWIDTHS:
            if abs(bw_khz - nominal) < _BW_TOLERANCE_KHZ:
                return num, den
    raise ValueError("bw_khz must be one of %s, got %r"
                     % (", ".join(str(b[0]) for b in _BANDWIDTHS), bw_khz))


def symbol_time_ms(sf, bw_khz):
    """Duration of one LoRa symbol: 2^SF / BW."""
    _check_int("sf", sf, SF_MIN, SF_MAX)
    num, den = _bandwidth(bw_khz)
    return (1 << sf) * den / num


def low_data_rate_optimize(sf, bw_khz):
    """Whether the modem should use low data rate optimisation (symbol of 16 ms or more)."""
    _check_int("sf", sf, SF_MIN, SF_MAX)
    num, den = _bandwidth(bw_khz)
    return (1 << sf) * den >= _LDRO_SYMBOL_MS * num


def time_on_air_ms(payload_len, sf, bw_khz=125, cr=1, preamble=8, explicit_header=True,
                   crc=True, ldro=None):
    """Time on air of one LoRa packet in milliseconds.

    payload_len: PHY payload bytes (0..255); cr: 1..4 for 4/5..4/8; preamble: programmed
    preamble symbols; ldro: None chooses it from the symbol time, True/False forces it.
    """
    _check_int("payload_len", payload_len, 0, PAYLOAD_MAX)
    _check_int("sf", sf, SF_MIN, SF_MAX)
    _check_int("cr", cr, CR_MIN, CR_MAX)
    _check_int("preamble", preamble, 0, PREAMBLE_MAX)
    num, den = _bandwidth(bw_khz)
    if ldro is None:
        de = 1 if (1 << sf) * den >= _LDRO_SYMBOL_MS * num else 0
    else:
        de = 1 if ldro else 0
    ih = 0 if explicit_header else 1
    bits = 8 * payload_len - 4 * sf + 28 + 16 * (1 if crc else 0) - 20 * ih
    per_block = 4 * (sf - 2 * de)
    blocks = -(-bits // per_block)  # ceiling division, exact on integers
    payload_symbols = 8 + max(blocks * (cr + 4), 0)
    symbols_x4 = 4 * preamble + _PREAMBLE_EXTRA_X4 + 4 * payload_symbols
    # One rounding only: symbols * 2^SF / BW with the exact bandwidth fraction.
    return symbols_x4 * (1 << sf) * den / (4 * num)


def eu868_max_payload(dr):
    """Largest PHY payload (bytes) EU868 allows at data rate DR0..DR6."""
    _check_int("dr", dr, 0, len(EU868_DATA_RATES) - 1)
    return EU868_MAX_PHY_PAYLOAD[dr]


def eu868_dr(sf, bw_khz):
    """The EU868 data rate index for a spreading factor and bandwidth."""
    _check_int("sf", sf, SF_MIN, SF_MAX)
    wanted = _bandwidth(bw_khz)
    for dr, (dr_sf, dr_bw) in enumerate(EU868_DATA_RATES):
        if dr_sf == sf and _bandwidth(dr_bw) == wanted:
            return dr
    raise ValueError("sf/bw_khz: SF%d at %r kHz is not an EU868 data rate" % (sf, bw_khz))


def eu868_sub_band(freq_hz):
    """(name, low_hz, high_hz, duty_cycle) of the sub-band holding a centre frequency.

    Bands are half-open [low, high). The caller keeps the whole channel (centre +/- half the
    bandwidth) inside the band; the default channels are well clear of the edges.
    """
    if not isinstance(freq_hz, (int, float)) or isinstance(freq_hz, bool):
        raise ValueError("freq_hz must be a number, got %r" % (freq_hz,))
    for band in EU868_SUB_BANDS:
        if band[1] <= freq_hz < band[2]:
            return band
    raise ValueError("freq_hz %r is in no EU868 sub-band open to general use "
                     "(863-870 MHz, except the alarm bands)" % (freq_hz,))


def off_time_ms(airtime_ms, duty_cycle):
    """How long the transmitter must then stay silent on the sub-band: airtime * (1/dc - 1)."""
    if not isinstance(airtime_ms, (int, float)) or isinstance(airtime_ms, bool) \
            or airtime_ms < 0:
        raise ValueError("airtime_ms must be a number >= 0, got %r" % (airtime_ms,))
    if not isinstance(duty_cycle, (int, float)) or isinstance(duty_cycle, bool) \
            or not 0 < duty_cycle <= 1:
        raise ValueError("duty_cycle must be a fraction in (0, 1], got %r" % (duty_cycle,))
    return airtime_ms * (1 / duty_cycle - 1)
