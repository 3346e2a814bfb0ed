# LoRa transport: one frame per LoRa packet on an EU868 channel, within the sub-band's duty
# cycle, then a receive window for the gateway's receipt and commands (class A style).
# The rules and timings are in eu868.py; the radio is net/sx127x.py.
import gc
import random
import time

import machine

from net import FrameTooLong, LinkBusy, LinkDown

# The plan (eu868), the radio driver and the downlink code load in up(), once the node has
# let its sensors go: on a 96 KB heap the two do not fit side by side.
eu868 = None
reply_window = None

TX_SLACK_MS = 100  # beyond the airtime, before a missing TxDone counts as a radio fault
_RX2_LATER_MS = 1000  # RX2 opens a second after RX1 (gateway/ingress/rx_windows.py)
# Adaptive SF: as LoRaWAN's network-side ADR keeps an installation margin of 10 dB.
_ADR_MARGIN_DB = 10
_ADR_GOOD = 4
_ADR_MISSES = 3


def make_radio(c):
    """The transceiver on the SPI bus and pins a `lora` config section names, tuned to its
    first channel (a node's link, the bridge). `chip` is checked here, and the SX126x's own
    fields in net/sx126x.py, not in node/config.py, which every node loads at boot: their
    names would take room in the string pool of every node."""
    Pin = machine.Pin
    spi = machine.SPI(c["spi"], baudrate=c["baudrate"], sck=Pin(c["sck"]), mosi=Pin(c["mosi"]),
                      miso=Pin(c["miso"]))
    chip = c.get("chip", "sx127x")
    if chip == "sx126x":
        from net.sx126x import from_config
        return from_config(spi, c)
    if chip != "sx127x":
        raise ValueError("lora.chip %r is not sx127x or sx126x" % (chip,))
    from net.sx127x import SX127x
    return SX127x(spi, Pin(c["cs"]), Pin(c["reset"]), Pin(c["dio0"]), freq_hz=c["channels"][0],
                  sf=c["sf"], bw_hz=c["bw_hz"], cr=c["cr"], power_dbm=c["power_dbm"],
                  preamble=c["preamble"])


def _clock_ms():
    # The RTC clock keeps running through deep sleep (ticks start again at every boot),
    # so an off time booked before a sleep still holds after it.
    return time.time_ns() // 1000000


class LoraLink:
    name = "lora"

    def __init__(self, cfg, keys, energy, feed, state, save_state):
        self._cfg = cfg["lora"]
        self._keys = keys
        self._addr = cfg["addr"]
        self._energy = energy
        self._feed = feed
        self._state = state  # the RTC state dict: the budget lives under "dc"
        self._save_state = save_state
        self._budget = None
        self._radio = None

    def up(self):
        global eu868, reply_window
        if self._radio is None:
            gc.collect()  # the app's garbage gone first, the radio's code lies in one piece
            from net import eu868
            from net.downlink import reply_window
            self._budget = eu868.Budget(self._state.get("dc"), self._cfg["bands"])
            try:
                self._radio = make_radio(self._cfg)
            except (OSError, ValueError) as e:  # RadioError is one; a bad chip or pin
                raise LinkDown("lora: radio not available (%s)" % e)
            if self._cfg["adr"] and "sf" in self._state:  # chosen on an earlier wake
                self._radio.configure(sf=self._state["sf"])

    def _channel(self, airtime_ms):
        """A channel whose sub-band is open, waiting up to max_wait_ms for one; LinkDown if
        none opens in time. Never sends on a closed sub-band."""
        c = self._cfg
        wait = self._budget.soonest_ms(c["channels"], _clock_ms())
        if wait > c["max_wait_ms"]:
            raise LinkBusy("lora: duty cycle, next channel free in %d s" % (wait // 1000 + 1))
        while wait > 0:
            self._sleep(wait)
            wait = self._budget.soonest_ms(c["channels"], _clock_ms())
        freq = eu868.pick_channel(c["channels"], self._budget, _clock_ms(),
                                  random.getrandbits(16))
        if freq is None:
            raise LinkBusy("lora: duty cycle")
        return freq

    def send(self, data, fcnt, window):
        """Send one frame; return (delivered, [command dicts]) from the receive windows."""
        c = self._cfg
        radio = self._radio
        longest = eu868.max_payload(radio.sf, radio.bw_hz)
        if len(data) > longest:
            raise FrameTooLong("lora: frame of %d bytes is over %d at SF%d"
                               % (len(data), longest, radio.sf))
        toa = eu868.time_on_air_ms(len(data), radio.sf, radio.bw_hz, radio.cr, radio.preamble)
        if "dc" not in self._state:
            # Power-on: RTC memory, and with it the record of the last transmissions, is
            # gone. Count as if this very frame had just been sent on every sub-band, so a
            # node that keeps losing power cannot send more often than the duty cycle allows.
            for freq in c["channels"]:
                self._budget.ended(freq, toa, _clock_ms())
            self._keep_budget()
        freq = self._channel(toa)
        radio.configure(freq_hz=freq, invert_iq=False)
        budget = self._budget
        # Booked and kept in RTC memory before the radio keys up (as if it started as late
        # as the send may take), so a reset during the transmission cannot forget it...
        budget.spend(freq, toa, _clock_ms() + TX_SLACK_MS)
        self._keep_budget()
        try:
            end_us = radio.send(data, int(toa) + TX_SLACK_MS, toa)
        except OSError as e:
            raise LinkDown("lora: send failed (%s)" % e)
        finally:
            self._energy.add("tx", int(toa) + 1)
        # ...and booked again from the real end of the transmission.
        budget.ended(freq, toa, _clock_ms())
        self._keep_budget()
        radio.configure(invert_iq=True)
        end = [end_us]  # each downlink's window opens after the previous one ended
        first = [True]
        heard = [None]  # the SNR (x4) of the first downlink: the receipt, as a rule

        def receive():
            delay, rx2 = c["rx_delay_ms"], first[0] and c["rx2_freq_hz"]
            # RX1 gives up by the time RX2 opens, however long rx_window_ms is.
            packet = self._window(end[0], delay, delay + _RX2_LATER_MS - c["rx_margin_ms"]
                                  if rx2 else None)
            if packet is None and rx2:
                # Nothing in RX1: a gateway short of airtime in the uplink's 1 % sub-band
                # answers in RX2, a second later on the RX2 channel (10 % sub-band).
                radio.configure(freq_hz=rx2)
                packet = self._window(end[0], delay + _RX2_LATER_MS)
            first[0] = False
            if packet is None:
                return None
            if heard[0] is None:
                heard[0] = packet[2]
            end[0] = packet[3]
            return packet[0]

        delivered, commands = reply_window(receive, self._keys, self._addr, fcnt, window, "lora")
        radio.sleep()
        if c["adr"]:
            self._adapt(delivered, heard[0])
        return delivered, commands

    def _adapt(self, delivered, snr_x4):
        """Adaptive spreading factor (lora.adr) from the receipts' link quality: the path
        is the same both ways, so the SNR at which the node hears the gateway's receipt
        stands for the gateway's. After _ADR_GOOD receipts in a row with _ADR_MARGIN_DB to
        spare one SF lower (each step costs 2.5 dB of sensitivity), one SF less: half the
        airtime and charge. After _ADR_MISSES uplinks in a row without a receipt, one more.
        Within sf_min..sf_max; kept in RTC memory (a power-on starts again at `sf`)."""
        c, st, sf = self._cfg, self._state, self._radio.sf
        good, missed = st.get("ag", 0), st.get("am", 0)
        if delivered:
            missed = 0
            margin = snr_x4 / 4 - eu868.snr_limit_db(sf)
            good = good + 1 if margin >= _ADR_MARGIN_DB + 2.5 else 0
        else:
            good, missed = 0, missed + 1
        new = sf
        if good >= _ADR_GOOD and sf > c["sf_min"]:
            new = sf - 1
        elif missed >= _ADR_MISSES and sf < c["sf_max"]:
            new = sf + 1
        if new != sf:
            print("lora: SF%d -> SF%d" % (sf, new))
            self._radio.configure(sf=new)
            good = missed = 0
        st["sf"], st["ag"], st["am"] = new, good, missed
        self._save_state()

    def _keep_budget(self):
        self._state["dc"] = self._budget.open_at
        self._save_state()

    def _window(self, end_us, delay_ms, give_up_ms=None):
        """Listen in the receive window that opens delay_ms after a transmission or downlink
        that ended at end_us (time.ticks_us), without a header by give_up_ms at the latest;
        the packet (payload, rssi, snr_x4, ticks_us) or None."""
        c = self._cfg
        radio = self._radio
        start, header, longest = eu868.rx_timing(delay_ms, c["rx_margin_ms"],
                                                 c["rx_window_ms"], radio.sf, radio.bw_hz,
                                                 radio.cr, radio.preamble)
        if give_up_ms is not None:
            header = min(header, give_up_ms)
        late_ms = time.ticks_diff(time.ticks_us(), end_us) // 1000
        if late_ms < start:
            self._sleep(start - late_ms)
            late_ms = time.ticks_diff(time.ticks_us(), end_us) // 1000
        if late_ms > header:
            return None  # the window went by while we were busy
        began = time.ticks_ms()
        # Polling once a symbol is often enough: the packet waits in the FIFO.
        step = max(1, int(radio.symbol_ms()))
        packet = radio.recv(longest - late_ms, header - late_ms, step, self._feed)
        self._energy.timed("rx", began)
        return packet

    def _sleep(self, ms):
        """Sleep, feeding the watchdog twice a second (its shortest timeout is 1 s)."""
        while ms > 0:
            self._feed()
            time.sleep_ms(min(ms, 500))
            ms -= 500

    def close(self):
        if self._radio is not None:
            self._radio.sleep()
