# The node's cycle: wake, measure, encode, queue, send, listen for downlinks, persist, deep
# sleep. Whatever fails (a sensor, a link, the config), the node reports it and sleeps: it
# never stops and never boot-loops. The watchdog resets a cycle that hangs.
import gc
import sys
import time

import machine

from node import state as rtcstate
from node.counter import FrameCounter
from node.energy import EnergyAccount
from node.queue import FlashQueue
from protocol import cbor_decode, counters, frame, schema  # noqa: F401 (see below)

# cbor_decode is imported here, while the heap is still whole, rather than on the first
# downlink deep in the cycle, where a fragmented heap may not fit it.

FW_VERSION = 100  # 0.1.0, as major * 10000 + minor * 100 + patch
SAFE_SLEEP_MS = 3600 * 1000   # broken config: try again in an hour
MIN_SLEEP_MS = 1000
DOWN_SAVE_EVERY = 1024        # keep the downlink counter in flash this often (section 6)
_REMEMBERED_COMMANDS = 8


def log(*args):
    print("node:", *args)


def forget(name):
    """Let a module that is done with go, so the heap it held serves the cycle."""
    sys.modules.pop(name, None)
    package, _, attr = name.rpartition(".")
    if package in sys.modules and hasattr(sys.modules[package], attr):
        delattr(sys.modules[package], attr)
    gc.collect()


def main(woke_ms=None):
    if woke_ms is None:
        woke_ms = time.ticks_ms()
    cause = machine.reset_cause()
    log("cityedge firmware %d, reset cause %d, wake reason %d"
        % (FW_VERSION, cause, machine.wake_reason()))
    from node import config  # needed once per boot: it goes again below
    try:
        cfg = config.load()
    except config.ConfigError as e:
        safe_mode(e, config)
        return
    finally:
        forget("node.config")
        forget("net.eu868")  # loaded to check a lora section; the link loads it when it needs it
    # forget() only drops sys.modules' reference: this local one would keep the module (9 KB)
    # for as long as main() runs, which on a mains node is for ever.
    del config
    node = Node(cfg, cause, woke_ms)
    sleep_ms = node.cycle()
    if cfg.get("power") == "mains":
        node.run_mains(sleep_ms)  # a mains-powered node (a luminaire) never deep-sleeps
    node.deep_sleep(sleep_ms)


def safe_mode(error, config):
    """A broken config: say so, report it if the key and address can still be read, and
    sleep long. Never a boot loop that drains the battery."""
    log("config error:", error)
    try:
        cfg = config.load_for_status()
        node = Node(cfg, machine.reset_cause(), time.ticks_ms())
        node.faults |= schema.FAULT_CONFIG
        node.send_status_only()
    except Exception as e:  # nothing more to try: the sleep below is the fallback
        log("no status frame in safe mode:", e)
    log("safe mode: sleeping %d s" % (SAFE_SLEEP_MS // 1000))
    machine.deepsleep(SAFE_SLEEP_MS)


class Node:
    def __init__(self, cfg, cause, woke_ms):
        self.cfg = cfg
        self.cause = cause
        self.woke_ms = woke_ms
        self.wdt = machine.WDT(timeout=cfg["wdt_ms"])
        self.rtc = machine.RTC()
        st = rtcstate.load(self.rtc)
        if st is None:
            if cause == machine.DEEPSLEEP_RESET:
                log("RTC state lost or corrupt: starting from flash")
            st = {"up_ms": 0, "sc": 0, "uah": 0, "f": 0, "rc": cause, "app": {}, "cmds": []}
        if cause != machine.DEEPSLEEP_RESET:
            st["rc"] = cause
        self.st = st
        self.counter = FrameCounter(st)
        self.keys = frame.Keys(cfg["key"])
        self.energy = EnergyAccount(cfg["currents_ma"])
        self.queue = FlashQueue(limit=cfg.get("queue_max", 100))
        self.faults = 0
        self.links = self._links()
        self.window = self._down_window()
        self.app = None
        self.wake_pin = None
        # Before the sensors and the radio load the battery, and while the heap is whole.
        self.battery_mv = self._battery_mv()

    # ------------------------------------------------------------ frames

    def _seal(self, kind, body):
        fcnt = self.counter.next()
        # RTC memory first: a reset that keeps it (watchdog, reset()) must find the counter
        # already past this frame's before the frame exists.
        self._save_state()
        self.queue.push(frame.seal(self.keys, kind, self.cfg["addr"], fcnt, body), fcnt)
        return fcnt

    def _status_body(self):
        st = self.st
        cycles = max(st["sc"], 1)
        return schema.encode(schema.STATUS, {
            "battery_mv": self.battery_mv, "reset_cause": st["rc"],
            "faults": (st["f"] | self.faults) & 0xFFFF, "fw_version": FW_VERSION,
            "uptime_s": st["up_ms"] // 1000, "queue_depth": len(self.queue),
            "dropped": self.queue.dropped, "awake_ms": st.get("awake", 0),
            "cycle_uah": min(st["uah"] / cycles, 42949672.95)})

    def _battery_mv(self):
        if self.cfg.get("power") == "mains":
            return None  # no battery: an ADC pin with nothing on it reads noise
        bat = self.cfg["battery"]
        try:
            adc = machine.ADC(machine.Pin(bat["adc_pin"]), atten=machine.ADC.ATTN_11DB)
            return int(adc.read_uv() * bat["divider"] / 1000)
        except (OSError, ValueError) as e:
            log("battery: cannot read the ADC:", e)
            return None

    # ------------------------------------------------------------ the cycle

    def cycle(self):
        """One cycle up to the sleep; returns how long to sleep (ms)."""
        st = self.st
        reading, events, app = self._measure()
        self.wdt.feed()
        if reading is not None:  # None: nothing worth an uplink this cycle
            self._seal(app.kind, schema.encode(app.kind, reading))
            st["f"] |= reading.get("fault", 0)
        for code, value in events:
            self._seal(schema.EVENT, schema.encode(schema.EVENT, {"event": code, "value": value}))
        if self.cfg.get("power") != "mains":
            app = self._release_app()
        if self.cause != machine.DEEPSLEEP_RESET or st["sc"] + 1 >= self.cfg["status_every"]:
            self._seal(schema.STATUS, self._status_body())
            st["sc"], st["uah"], st["f"] = 0, 0, 0
        rtcstate.save(self.rtc, st)
        gc.collect()
        commands = self._deliver()
        if commands:
            self._apply(commands, app)
            self._deliver()
        return self._close_cycle()

    def send_status_only(self):
        self._seal(schema.STATUS, self._status_body())
        self._deliver()

    def _measure(self):
        try:
            app = self._app()
            start = time.ticks_ms()
            reading, events = app.measure(self.st["up_ms"] // 1000)
            self.energy.timed("sensor", start)
        except Exception as e:  # the app could not even start: report it, keep the node up
            log("app failed:", repr(e))
            self.faults |= schema.FAULT_APP
            return None, [], None
        log("reading", reading, "events", events)
        return reading, events, app

    def _app(self):
        if self.app is None:
            import apps
            self.app = apps.create(self.cfg, self.st["app"], machine)
            self.wake_pin = getattr(self.app, "wake_pin", None)
        return self.app

    def _release_app(self):
        """A battery node is done with its sensors once the reading is sealed: let the app
        and its drivers go, so the radio and the downlinks have the heap. A command for the
        app brings it back."""
        self.app = None
        for name in [n for n in sys.modules if n.split(".")[0] in ("apps", "sensors")]:
            forget(name)
        return None

    # ------------------------------------------------------------ links

    def _links(self):
        links = []
        for name in self.cfg["transports"]:
            if name == "wifi":
                from net.wifi import WifiLink
                links.append(WifiLink(self.cfg, self.keys, self.energy, self.wdt.feed))
            elif name == "lora":  # the radio's modules load only on a node that has one
                gc.collect()  # what config left behind: the link's code then lies in one piece
                from net.lora import LoraLink
                links.append(LoraLink(self.cfg, self.keys, self.energy, self.wdt.feed, self.st,
                                      self._save_state))
        return links

    def _save_state(self):
        rtcstate.save(self.rtc, self.st)

    def _down_window(self):
        saved = self.st.get("dn")
        if saved is None:
            try:
                with open("dn.cnt") as f:
                    saved = [int(f.read()), 0]  # flash copy: counters up to it are used
            except (OSError, ValueError):
                saved = [None, 0]
        return counters.ReplayWindow(saved[0], saved[1])

    def _keep_window(self):
        newest = self.window.newest
        self.st["dn"] = [newest, self.window.seen]
        if newest is not None and newest - self.st.get("dn_saved", -DOWN_SAVE_EVERY) >= DOWN_SAVE_EVERY:
            with open("dn.cnt", "w") as f:
                f.write(str(newest))
            self.st["dn_saved"] = newest

    def _deliver(self):
        """Send queued frames oldest first over the first link that works; a frame leaves
        the queue only when the gateway confirmed it. Returns the commands received."""
        from net import FrameTooLong, LinkBusy
        commands, too_long = [], {}
        for link in self.links:
            if not len(self.queue):
                break
            try:
                link.up()
                for fcnt, data in self.queue.frames():
                    try:
                        delivered, received = link.send(data, fcnt, self.window)
                    except FrameTooLong as e:  # the next frames may still go this way
                        log("%s: %s" % (link.name, e))
                        too_long[fcnt] = too_long.get(fcnt, 0) + 1
                        continue
                    commands += received
                    self.wdt.feed()
                    if not delivered:
                        log("%s: no receipt for frame %d; it stays queued" % (link.name, fcnt))
                        self.faults |= schema.FAULT_LINK
                        break
                    self.queue.remove(fcnt)
            except LinkBusy as e:  # the duty cycle: the frame waits, nothing is wrong
                log("%s: %s" % (link.name, e))
            except Exception as e:  # one failing link must not stop the others
                log("%s: %s" % (link.name, e))
                self.faults |= schema.FAULT_LINK
        for fcnt, links in too_long.items():
            if links == len(self.links):  # no transport can ever carry it: it would block
                log("frame %d dropped: too long for every link" % fcnt)
                self.queue.drop(fcnt)
                self.faults |= schema.FAULT_LINK
        self._keep_window()
        return commands

    # ------------------------------------------------------------ downlink commands

    def _apply(self, commands, app):
        reboot = False
        for cmd in commands:
            cid, name, arg = cmd["command_id"], cmd["command"], cmd["arg"]
            done = [r for c, r in self.st["cmds"] if c == cid]
            if done:
                result = done[0]  # already handled: acknowledge again, do not redo it
            else:
                result = self._run_command(name, arg, app)
                self.st["cmds"] = (self.st["cmds"] + [[cid, result]])[-_REMEMBERED_COMMANDS:]
                reboot = reboot or (name == "reboot" and result == 0)
            log("command %d %s %r -> %d" % (cid, name, arg, result))
            self._seal(schema.ACK, schema.encode(schema.ACK, {"command_id": cid, "result": result}))
        self._save_state()
        if reboot:
            self._deliver()
            machine.reset()

    def _run_command(self, name, arg, app):
        if name in ("set_interval", "set_status_every"):
            field = "interval_s" if name == "set_interval" else "status_every"
            from node.overrides import save_override
            save_override(field, arg)
            self.cfg[field] = arg
            return 0
        if name == "reboot":
            return 0
        try:
            app = app or self._app()
        except Exception as e:  # the app cannot start: the command cannot be applied
            log("app failed:", repr(e))
            return 3
        result = app.command(name, arg)
        return 1 if result is None else result

    # ------------------------------------------------------------ sleep

    def _close_cycle(self):
        st = self.st
        awake_ms = time.ticks_diff(time.ticks_ms(), self.woke_ms)
        sleep_ms = max(MIN_SLEEP_MS, self.cfg["interval_s"] * 1000 - awake_ms)
        st["awake"] = awake_ms
        st["uah"] += self.energy.charge_uah(awake_ms, sleep_ms)
        st["sc"] += 1
        st["f"] |= self.faults
        st["up_ms"] += awake_ms + sleep_ms
        for link in self.links:
            link.close()
        rtcstate.save(self.rtc, st)
        gc.collect()
        spent = self.energy.ms
        log("cycle done: awake %d ms (sensor %d, tx %d, rx %d), %d frame(s) queued, "
            "sleeping %d ms" % (awake_ms, spent.get("sensor", 0), spent.get("tx", 0),
                                spent.get("rx", 0), len(self.queue), sleep_ms))
        self.wdt.feed()
        return sleep_ms

    def deep_sleep(self, sleep_ms):
        # An app may wake the node early on a pin (a car arriving): an event-driven uplink.
        wake = self.wake_pin
        if wake is not None:
            import esp32
            esp32.wake_on_ext0(machine.Pin(wake[0]), wake[1])
        machine.deepsleep(sleep_ms)

    def run_mains(self, sleep_ms):
        """Stay awake between cycles: the app's tick runs every app.tick_ms (dimming, motion)
        and may ask for a cycle at once (an event to report)."""
        app = self.app
        tick_ms = getattr(app, "tick_ms", 1000)
        while True:
            start = time.ticks_ms()
            while time.ticks_diff(time.ticks_ms(), start) < sleep_ms:
                self.wdt.feed()
                if app is not None and app.tick(time.ticks_ms()):
                    break
                time.sleep_ms(tick_ms)
            self.cause = machine.DEEPSLEEP_RESET  # later cycles are not after a reset
            self.woke_ms = time.ticks_ms()
            self.energy = EnergyAccount(self.cfg["currents_ma"])
            self.faults = 0
            sleep_ms = self.cycle()
