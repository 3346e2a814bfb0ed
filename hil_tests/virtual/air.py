"""The simulated air shared by every LoRa radio of a virtual fleet.

Radios (SX127x models on virtual boards, packet forwarders, synthetic transmitters in tests
and benches) put `Frame`s on the air with their modulation; the air decides each frame's
fate at each receiver and keeps a log of every one of them.

Propagation: log-distance path loss, PL(d) = PL(1 m) + 10 n log10(d / 1 m), with
PL(1 m) = 31.2 dB (free space at 868 MHz) and n = 3.0 (built-up streets; 2.0 is free
space), plus an optional log-normal shadowing of `shadowing_db` per link (fixed per pair of
positions, as buildings do not move). RSSI = TX power - PL. Noise floor:
-174 dBm/Hz + 10 log10(BW) + 6 dB receiver noise figure (-117 dBm at 125 kHz); SNR = RSSI -
noise floor. A frame is "too weak" below the demodulator's SNR limit of its spreading
factor (SX1276 datasheet table 13: -7.5 dB at SF7 ... -20 dB at SF12).

Collisions: two frames interfere at a receiver when they overlap in time on the same channel
(centre frequencies closer than a quarter of the bandwidth) with the same spreading factor
and the same IQ polarity (other spreading factors and the opposite polarity are treated as
orthogonal). Capture rule: a frame survives the frames overlapping it when it is at least
`capture_db` (6 dB) stronger than their summed power at that receiver and none of them was
on air during its preamble (the receiver would have locked on the earlier one). A frame
that survives neither way is "collided" if the overlap began before the receiver locked
(preamble hit: nothing received) and "corrupt" if it began after (the radio raises
PayloadCrcError). Equal-power frames thus succeed only without any overlap, which is pure
ALOHA: P(success) = exp(-2G) at offered load G (see `aloha_success`).

A half-duplex receiver (a node's radio, a gateway) hears nothing while it transmits.
Random loss: each (frame, receiver) is "lost" with probability `loss`, drawn from a
generator seeded per air, so a run is repeatable.

Horizon: boards run at different real speeds, each with its own virtual clock. A frame's
fate at a receiver depends on every transmission that overlaps it, and a radio can only
start a transmission at or after its own clock. So the fate of a frame ending at T is final
once every radio's clock has reached T: `horizon()` is the smallest clock of the radios that
joined (a radio that left, or a board that stopped, no longer counts).

Waiting: `fate()` blocks (in real time) until the horizon reaches the frame's end, and a
receiver polled at v (`candidates()`) until the horizon reaches v: only then is every frame
that began by v on the air. A radio whose uplink is over (`settle()`, from its TxDone
on), and again when it enters or polls its receiver, waits until that uplink's fate is
known and, if a gateway received it, until that gateway has heard the network's answer or
given up (`answer_timeout`). Every wait also ends after `max_wait` seconds of real time,
logged.

Why this cannot deadlock: a radio that waits does so inside one request of its board, at
that board's virtual time v, and v is at or past the end of every frame it waits for (its own
uplink ended by its TxDone; a frame it hears ended by v). Take the waiting radio with
the smallest v. Every other radio's clock is either at least v (a waiting radio with a
larger or equal v, a board sleeping or past v) or grows with real time (a running board
advances, and reports its clock with its next bus request). So the horizon reaches v and that
radio proceeds; the answer wait is bounded by `answer_timeout` and needs nothing from the
others. By induction every waiting radio proceeds. The `max_wait` bound only matters for a
board that stops without leaving the air (a crash), and the log says when it was used.
"""
import bisect
import math
import random
import threading
import time
import zlib

SNR_LIMIT_DB = {6: -5.0, 7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}
NOISE_FIGURE_DB = 6.0
PL_1M_DB = 31.2
PATH_LOSS_EXPONENT = 3.0


def noise_floor_dbm(bw_khz):
    return -174.0 + 10 * math.log10(bw_khz * 1000) + NOISE_FIGURE_DB


def aloha_success(offered_load):
    """Pure ALOHA: the chance that a frame overlaps no other, at offered load G (frames
    per frame airtime): exp(-2G)."""
    return math.exp(-2.0 * offered_load)


def _stall(radio, seconds=None):
    """Tell the radio's board that the air holds it still (seconds None: from now on)."""
    board = getattr(radio, "board", None)
    if board is not None and hasattr(board, "stall"):
        if seconds is None:
            board.stall_begins()
        else:
            board.stall(seconds)


class LogDistance:
    def __init__(self, pl_1m_db=PL_1M_DB, exponent=PATH_LOSS_EXPONENT, shadowing_db=0.0,
                 seed=0):
        self.pl_1m_db = pl_1m_db
        self.exponent = exponent
        self.shadowing_db = shadowing_db
        self.seed = seed

    def loss_db(self, a, b):
        d = max(1.0, math.dist(a, b))
        pl = self.pl_1m_db + 10 * self.exponent * math.log10(d)
        if self.shadowing_db:
            rng = random.Random(zlib.crc32(repr((self.seed, tuple(a), tuple(b))).encode()))
            pl += rng.gauss(0, self.shadowing_db)
        return pl


class Listening:
    """A receiver: a node's radio in RX, or a gateway's channels."""

    def __init__(self, freqs_hz, sfs, bw_khz, iq_inverted, sync_word):
        self.freqs_hz = tuple(freqs_hz)
        self.sfs = tuple(sfs)
        self.bw_khz = bw_khz
        self.iq_inverted = iq_inverted
        self.sync_word = sync_word

    def hears(self, frame):
        return (frame.sf in self.sfs and frame.bw_khz == self.bw_khz
                and frame.iq_inverted == self.iq_inverted and frame.sync_word == self.sync_word
                and any(_same_channel(f, frame.freq_hz, self.bw_khz) for f in self.freqs_hz))


def _same_channel(f1, f2, bw_khz):
    return abs(f1 - f2) < bw_khz * 1000 / 4


class Fate:
    __slots__ = ("status", "rssi", "snr", "by")

    def __init__(self, status, rssi, snr, by=()):
        self.status = status   # delivered, corrupt, collided, too weak, lost, transmitting
        self.rssi = rssi
        self.snr = snr
        self.by = tuple(by)    # ids of the frames it collided with

    def __iter__(self):
        return iter((self.status, self.rssi, self.snr))

    def __repr__(self):
        return "<Fate %s %.1f dBm %.1f dB%s>" % (self.status, self.rssi, self.snr,
                                                 " by %s" % (self.by,) if self.by else "")


class Air:
    def __init__(self, *, loss=0.0, capture_db=6.0, path_loss=None, seed=1,
                 answer_timeout=0.5, max_wait=30.0):
        self.loss = loss
        self.capture_db = capture_db
        self.path_loss = path_loss or LogDistance()
        self.seed = seed
        self.answer_timeout = answer_timeout
        self.max_wait = max_wait
        self.frames = []          # every Frame, in the order they were sent
        self._by_start = []       # (start, id, Frame), sorted: to find overlaps fast
        self._longest = 0         # the longest frame so far (µs)
        self.log = []             # one dict per (frame, receiver) fate decided
        self.waits = []           # (radio, what, seconds) of waits that hit max_wait
        self._radios = {}         # id(radio) -> radio: those that count for the horizon
        self._hooked = set()      # ids of radios whose board tells the air its clock moved
        self._horizon = None      # cached: the smallest clock, and whose it is
        self._slowest = None
        self._thresholds = []     # the horizons waiting radios wait for
        self._listening = {}      # id(radio) -> (Listening, since)
        self._fates = {}          # (frame id, receiver label) -> Fate
        self._answers = {}        # frame id -> threading.Event: the network's answer known
        self._last_uplink = {}    # id(radio) -> Frame
        self._gateways = []       # the packet forwarders listening to this air
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)

    # ------------------------------------------------------------ radios

    def join(self, radio):
        """A radio whose clock bounds the horizon (it may transmit)."""
        with self._lock:
            self._radios[id(radio)] = radio
            self._horizon = None

    def leave(self, radio):
        with self._lock:
            self._radios.pop(id(radio), None)
            self._listening.pop(id(radio), None)
            self._horizon = None
            self._changed.notify_all()

    def horizon(self):
        """The virtual time before which no new transmission can begin."""
        with self._lock:
            if self._horizon is None or len(self._hooked) < len(self._radios):
                self._recompute()
            return self._horizon

    def _recompute(self):
        slowest, low = None, float("inf")
        for key, radio in self._radios.items():
            board = getattr(radio, "board", None)
            if key not in self._hooked and board is not None \
                    and hasattr(board, "vt_listeners"):
                board.vt_listeners.append(lambda r=radio: self._moved(r))
                self._hooked.add(key)
            clock = radio.clock()
            if clock < low:
                slowest, low = radio, clock
        self._horizon, self._slowest = low, slowest

    def _moved(self, radio):
        """A board's clock moved: only the slowest radio's can move the horizon."""
        if radio is not self._slowest and self._horizon is not None:
            return
        with self._lock:
            self._recompute()
            if self._thresholds and self._horizon >= min(self._thresholds):
                self._changed.notify_all()

    def listen(self, radio, settings, vt):
        """A node's radio entered RX with these modem settings."""
        self.settle(radio, vt)
        with self._lock:
            self._listening[id(radio)] = (Listening((settings.freq_hz,), (settings.sf,),
                                                   settings.bw_khz, settings.rx_inverted,
                                                   settings.sync_word), vt)

    def stop_listening(self, radio, vt):
        with self._lock:
            self._listening.pop(id(radio), None)

    # ------------------------------------------------------------ transmitting

    def transmit(self, radio, frame):
        with self._lock:
            frame.id = len(self.frames) + 1
            frame.radio = radio
            if getattr(frame, "position", None) is None:
                frame.position = radio.position
            self.frames.append(frame)
            bisect.insort(self._by_start, (frame.start, frame.id, frame))
            self._longest = max(self._longest, frame.end - frame.start)
            if not frame.iq_inverted:
                self._last_uplink[id(radio)] = frame
                self._answers[frame.id] = threading.Event()
            self._changed.notify_all()
        return frame

    def add_gateway(self, gateway):
        with self._lock:
            self._gateways.append(gateway)

    def remove_gateway(self, gateway):
        with self._lock:
            if gateway in self._gateways:
                self._gateways.remove(gateway)
            self._changed.notify_all()

    def gateway_decided(self, frame, gateway, heard):
        """A gateway decided this uplink's fate (and passed it on if `heard`). Once every
        gateway has, the sender's receive window waits for the network's answer
        (`answered`) or `answer_timeout` if any of them heard it."""
        event = self._answers.get(frame.id)
        if event is None:
            return
        with self._lock:
            event.deciders = getattr(event, "deciders", set()) | {id(gateway)}
            if heard:
                event.gateway_heard = True
            self._changed.notify_all()

    def answered(self, frame):
        """The network's answer to this uplink (a downlink or none) is known."""
        event = self._answers.get(frame.id)
        if event is not None:
            event.set()

    # ------------------------------------------------------------ receiving

    def candidates(self, radio, settings, since, vt):
        """Frames a radio listening since `since` could lock on, started by vt. Waits until
        every other radio's clock reached vt: until then one of them may still begin a
        frame before vt."""
        self.settle(radio, vt)
        self._wait_horizon(vt, radio)
        listening = Listening((settings.freq_hz,), (settings.sf,), settings.bw_khz,
                              settings.rx_inverted, settings.sync_word)
        lead = max(0, (settings.preamble + 5) * settings.symbol_us())
        with self._lock:
            lo = bisect.bisect_left(self._by_start, (since - lead,))
            hi = bisect.bisect_right(self._by_start, (vt, float("inf")))
            found = [f for _, _, f in self._by_start[lo:hi]
                     if f.radio is not radio and listening.hears(f)]
        return sorted(found, key=lambda f: f.start)

    def activity(self, radio, settings, start, end):
        """Channel activity detection: a frame of these settings on air in [start, end)."""
        listening = Listening((settings.freq_hz,), (settings.sf,), settings.bw_khz,
                              settings.rx_inverted, settings.sync_word)
        with self._lock:
            for f in self.overlapping(start, end):
                if f.radio is not radio and listening.hears(f):
                    return f
        return None

    def fate(self, frame, receiver, *, wait=True):
        """The frame's Fate at a receiver (an object with `label` and `position`, and for a
        radio that transmits, the frames it sent). Blocks until the horizon passes the
        frame's end, unless wait=False."""
        key = (frame.id, receiver.label)
        with self._lock:
            if key in self._fates:
                return self._fates[key]
        if wait:
            self._wait_horizon(frame.end, receiver)
        with self._lock:
            if key not in self._fates:
                self._fates[key] = self._decide(frame, receiver)
            return self._fates[key]

    def locks(self, frame, receiver):
        """Whether a receiver locks on the frame and reads its header (ValidHeader): it is
        strong enough, no other frame hit its preamble, the receiver was not transmitting
        and it was not lost. Waits until the horizon passes the preamble."""
        self._wait_horizon(frame.lock_time(), receiver)
        with self._lock:
            rssi = frame.power_dbm - self.path_loss.loss_db(frame.position, receiver.position)
            if rssi - noise_floor_dbm(frame.bw_khz) < SNR_LIMIT_DB.get(frame.sf, -20.0):
                return False
            lock = frame.lock_time()
            for own in getattr(receiver, "transmissions", lambda: ())():
                if own.start < lock and own.end > frame.start:
                    return False
            for o in self.overlapping(frame.start, lock):
                if o is not frame and o.sf == frame.sf and o.iq_inverted == frame.iq_inverted \
                        and _same_channel(o.freq_hz, frame.freq_hz, frame.bw_khz):
                    return False
            return not self._randomly_lost(frame, receiver)

    def _randomly_lost(self, frame, receiver):
        # A stable seed (str hashes change per process): the same run gives the same losses.
        rng = random.Random(zlib.crc32(repr((self.seed, frame.id, receiver.label)).encode()))
        return rng.random() < self.loss

    def _wait_horizon(self, t, who):
        with self._lock:
            if self.horizon() >= t:
                return True
            self._thresholds.append(t)
        try:
            return self._wait(lambda: self.horizon() >= t, who, "horizon")
        finally:
            with self._lock:
                self._thresholds.remove(t)

    def _wait(self, condition, who, what, limit=None):
        """Wait in real time for a condition; the waiting radio's board does not count the
        time (its chip saw none of it)."""
        limit = self.max_wait if limit is None else limit
        started = time.monotonic()
        _stall(who)
        deadline = started + limit
        try:
            with self._lock:
                while not condition():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self.waits.append((getattr(who, "label", who), what, limit))
                        return False
                    # Boards report their clocks (notify); radios without a board
                    # (tests, benches) are polled.
                    hooked = len(self._hooked) >= len(self._radios)
                    self._changed.wait(min(left, 0.05 if hooked else 0.002))
            return True
        finally:
            _stall(who, time.monotonic() - started)

    def settle(self, radio, vt):
        """Once a radio's uplink is over (its TxDone), and again before it listens at vt: wait
        for that uplink's fate and the network's answer to it. Waiting from the TxDone on
        matters: a node whose own clock ran on to its receive window before the gateway
        heard its uplink would leave the gateway's answer no time to go out."""
        frame = self._last_uplink.get(id(radio))
        if frame is None or frame.end > vt:
            return
        event = self._answers.get(frame.id)
        if event is None or event.is_set():
            return
        # The gateways decide once the horizon passes the uplink; then, if one heard it,
        # the network has answer_timeout to answer.
        def decided():
            gateways = {id(g) for g in self._gateways}
            return gateways <= getattr(event, "deciders", set())

        if not self._wait(lambda: self.horizon() >= frame.end and decided(), radio,
                          "uplink fate"):
            event.set()
            return
        if getattr(event, "gateway_heard", False):
            started = time.monotonic()
            _stall(radio)
            event.wait(self.answer_timeout)
            _stall(radio, time.monotonic() - started)
        event.set()

    def _decide(self, frame, receiver):
        position = receiver.position
        rssi = frame.power_dbm - self.path_loss.loss_db(frame.position, position)
        snr = rssi - noise_floor_dbm(frame.bw_khz)
        fate = None
        for own in getattr(receiver, "transmissions", lambda: ())():
            if own.start < frame.end and own.end > frame.start:
                fate = Fate("transmitting", rssi, snr, (own.id,))
                break
        if fate is None and snr < SNR_LIMIT_DB.get(frame.sf, -20.0):
            fate = Fate("too weak", rssi, snr)
        if fate is None:
            fate = self._collisions(frame, receiver, rssi, snr)
        if fate is None:
            fate = Fate("lost" if self._randomly_lost(frame, receiver) else "delivered",
                        rssi, snr)
        self.log.append({"frame": frame.id, "sender": frame.sender, "receiver": receiver.label,
                         "start": frame.start, "end": frame.end, "freq_hz": frame.freq_hz,
                         "sf": frame.sf, "size": len(frame.payload), "fate": fate.status,
                         "rssi": round(rssi, 1), "snr": round(snr, 1), "by": fate.by})
        return fate

    def _collisions(self, frame, receiver, rssi, snr):
        others = [o for o in self.overlapping(frame.start, frame.end)
                  if o is not frame and o.sf == frame.sf and o.iq_inverted == frame.iq_inverted
                  and _same_channel(o.freq_hz, frame.freq_hz, frame.bw_khz)]
        if not others:
            return None
        power = 0.0
        for o in others:
            power += 10 ** ((o.power_dbm - self.path_loss.loss_db(o.position,
                                                                   receiver.position)) / 10)
        lock = frame.lock_time()
        preamble_hit = any(o.start < lock for o in others)
        if not preamble_hit and rssi - 10 * math.log10(power) >= self.capture_db:
            return None  # captured: the receiver stays on this frame
        ids = tuple(o.id for o in others)
        return Fate("collided" if preamble_hit else "corrupt", rssi, snr, ids)

    def overlapping(self, start, end):
        """Frames on air at some instant of [start, end)."""
        lo = bisect.bisect_left(self._by_start, (start - self._longest,))
        hi = bisect.bisect_left(self._by_start, (end,))
        return [f for _, _, f in self._by_start[lo:hi] if f.end > start]

    def fates(self, frame_id):
        """Every decided fate of one frame: {receiver label: Fate}."""
        with self._lock:
            return {rx: f for (fid, rx), f in self._fates.items() if fid == frame_id}


class Modulation:
    """Modem settings of a transmission that no SX127x register file describes: a gateway's
    downlink, a synthetic transmitter in a test or bench."""

    def __init__(self, freq_hz=868100000, sf=9, bw_khz=125, cr=1, *, power_dbm=14.0,
                 preamble=8, crc=True, iq_inverted=False, sync_word=0x12):
        from protocol import airtime
        self._airtime = airtime
        self.freq_hz = freq_hz
        self.sf = sf
        self.bw_khz = bw_khz
        self.cr = cr
        self.power_dbm = power_dbm
        self.preamble = preamble
        self.crc = crc
        self.implicit = False
        self.tx_inverted = iq_inverted
        self.rx_inverted = iq_inverted
        self.sync_word = sync_word
        self.ldro = airtime.low_data_rate_optimize(sf, bw_khz)

    def symbol_us(self):
        return self._airtime.symbol_time_ms(self.sf, self.bw_khz) * 1000

    def airtime_us(self, length):
        return round(self._airtime.time_on_air_ms(length, self.sf, self.bw_khz, self.cr,
                                                  self.preamble, True, self.crc,
                                                  self.ldro) * 1000)


class Transmitter:
    """A radio without a board (tests, benches): its clock is set by whoever drives it."""

    def __init__(self, label, position=(0.0, 0.0)):
        self.label = label
        self.name = label
        self.position = position
        self.now = 0
        self.sent = []

    def clock(self):
        return self.now

    def transmissions(self):
        return self.sent

    def send(self, air, payload, start, modulation):
        from hil_tests.virtual.models.sx127x import Frame
        frame = Frame(self.label, payload, start, modulation, position=self.position)
        self.sent.append(frame)
        return air.transmit(self, frame)
