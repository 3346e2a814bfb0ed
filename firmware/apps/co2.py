"""Indoor air (CO2, temperature, humidity) of a classroom, with an alarm uplink on crossing.

Chips (config "sensors"): {"chip": "scd4x", "i2c": 0, "scl": 22, "sda": 21} for a Sensirion
SCD41 (or SCD40) on I2C, or {"chip": "mhz19b", "uart": 2, "tx": 17, "rx": 16} for a Winsen
MH-Z19B on a UART.

Algorithm:
- Alarm with hysteresis: the alarm sets when CO2 reaches `co2_high` (default 1400 ppm)
  and clears when it falls below `co2_low` (default 1000 ppm); each change is an event
  uplink (7 co2_high / 8 co2_normal, with the ppm as value) in the same cycle. The 400 ppm
  gap is ten times the SCD41's accuracy (+-(40 ppm + 5 %)): noise cannot make it chatter.
  `set_thresholds` [high, low] (or [high]: low stays) changes them; low < high required.
- A reading whose raw values are identical to the previous one (all of CO2, temperature
  and humidity, to the chip's last bit) is a stuck sensor: fault `range`, values null.
  The MH-Z19B gives only an integer ppm, which may truly repeat; there a run of
  STUCK_READINGS_UART identical values is needed.
- The alarm state never changes on a faulty reading.

Measurement mode (SCD4x setting "mode"): "single_shot" (default, SCD41 only): the node wakes,
starts one measurement, light-sleeps its 5 s and reads it. Between shots the SCD41 idles at
0.15 mA and keeps its calibration history (it stays powered through deep sleep), so one
reading per 5 minutes averages < 0.4 mA (datasheet) against about 3 mA for low-power periodic
mode and 15 mA for periodic mode; the price is 5 s of light sleep per cycle. "low_power"
(a measurement every 30 s) and "periodic" (every 5 s) keep the chip measuring through deep
sleep and read its newest value at once: for the SCD40, which has no single shot.

Settings: temperature_offset_c (the node's self-heating of the sensor, default 4.0, the
chip's own default), altitude_m (pressure compensation, default 0), asc (automatic
self-calibration, default true; turn it off in rooms that never air out to outdoor levels).
They are written to the chip when they differ from what it holds, then persisted in its
EEPROM (guaranteed 2000 writes: only real changes are written).
forced_recalibration (reference ppm 400..2000): the SCD4x's FRC (ack 3 if the chip reports
failure, e.g. it has not measured for 3 minutes); the MH-Z19B can only be calibrated at its
400 ppm zero point: references up to 450 ppm zero it and keep the difference as an
offset (in the settings, which survive power loss), higher ones are refused (ack 2).
"""
from protocol import schema

HIGH_PPM = 1400
LOW_PPM = 1000
MAX_PPM = 40000
STUCK_READINGS_UART = 12      # an hour at a 5-minute interval
EVENT_HIGH = 7
EVENT_NORMAL = 8


def hysteresis(ppm, alarm, high=HIGH_PPM, low=LOW_PPM):
    """(new alarm state, event or None): set at ppm >= high, cleared at ppm < low."""
    if not alarm and ppm >= high:
        return True, (EVENT_HIGH, ppm)
    if alarm and ppm < low:
        return False, (EVENT_NORMAL, ppm)
    return alarm, None


def thresholds(arg, high, low):
    """The (high, low) a set_thresholds argument asks for, or None if it is not valid:
    [high] keeps low, [high, low] sets both; 0 < low < high <= 40000."""
    if not isinstance(arg, list) or not 1 <= len(arg) <= 2:
        return None
    for a in arg:
        if not isinstance(a, int) or isinstance(a, bool):
            return None
    new_high = arg[0]
    new_low = arg[1] if len(arg) == 2 else low
    if not 0 < new_low < new_high <= MAX_PPM:
        return None
    return new_high, new_low


def fingerprint(co2, temperature, humidity):
    """Integers that change with every least significant bit of the chip's words (SCD4x:
    0.0027 °C and 0.0015 %RH), for the stuck-value check."""
    return [int(co2), int(temperature * 1000), int(humidity * 1000)]


def plausible(temperature, humidity):
    """The chip's temperature and humidity within what the reading can carry, or None."""
    if temperature is None or not -40 <= temperature <= 85:
        return None
    return round(temperature, 1), min(100.0, max(0.0, round(humidity * 2) / 2))


class App:
    kind = schema.CO2

    def __init__(self, cfg, state, hw):
        import gc
        gc.collect()  # the driver's code then fills the holes low in the heap
        self._cfg = cfg
        self._state = state
        sensors = cfg["sensors"]
        settings = cfg["settings"]
        self._chip = chip = sensors.get("chip", "scd4x")
        if chip == "scd4x":
            from sensors.scd4x import SCD4x
            bus = hw.I2C(sensors.get("i2c", 0), scl=hw.Pin(sensors.get("scl", 22)),
                         sda=hw.Pin(sensors.get("sda", 21)), freq=100000)
            # The CPU has nothing to do during the 5 s shot: light sleep keeps RAM and costs
            # under a milliampere instead of the 40 mA of a running core.
            self._sensor = SCD4x(bus, settings.get("mode", "single_shot"), hw.lightsleep)
        elif chip == "mhz19b":
            from sensors.mhz19b import MHZ19B
            # 9 bytes at 9600 baud take 9.4 ms; the module answers within a few more.
            bus = hw.UART(sensors.get("uart", 2), 9600, tx=sensors.get("tx", 17),
                          rx=sensors.get("rx", 16), timeout=200)
            self._sensor = MHZ19B(bus, settings.get("range_ppm", 5000),
                                  settings.get("zero_offset_ppm", 0))
        else:
            raise ValueError("co2: unknown chip %r" % chip)

    def _setting(self, name, default):
        return self._cfg["settings"].get(name, default)

    def _save_settings(self, **changes):
        settings = dict(self._cfg["settings"])
        settings.update(changes)
        self._cfg["settings"] = settings
        from node.overrides import save_override
        save_override("settings", settings)  # survives power loss, like the interval

    def measure(self, now_s):
        """(reading, events): never raises; a sensor fault becomes a fault bit."""
        from sensors.errors import SensorError
        import gc
        st = self._state
        reading = {"co2_ppm": None, "temperature_c": None, "humidity_pct": None, "fault": 0}
        try:
            # After power loss (RTC memory lost) or a fault. The chip's settings come from
            # config.json, which changes only by provisioning, which power-cycles the node.
            if not st.get("c"):
                self._sensor.setup(self._setting("temperature_offset_c", 4.0),
                                   self._setting("altitude_m", 0), self._setting("asc", True))
                st["c"] = 1
                if self._setting("mode", "single_shot") != "single_shot":
                    return None, []  # the chip's first measurement comes after this cycle
            co2, temperature, humidity = self._sensor.measure()
            # The bus traffic left garbage all over the heap: free it before the cycle makes
            # its frames, or they scatter and no block is left for a downlink's decoder.
            gc.collect()
        except SensorError as e:
            reading["fault"] = e.fault
            if e.fault != schema.FAULT_CRC:
                st["c"] = 0  # it may have lost power or hung: set it up again next time
            return reading, []
        return self._judge(reading, co2, temperature, humidity)

    def _judge(self, reading, co2, temperature, humidity):
        st = self._state
        mark = fingerprint(co2, temperature or 0, humidity or 0)
        count = st.get("n", 0) + 1 if st.get("r") == mark else 1  # readings alike in a row
        st["r"], st["n"] = mark, count
        if count >= (STUCK_READINGS_UART if self._chip == "mhz19b" else 2):
            reading["fault"] = schema.FAULT_RANGE
            return reading, []
        if temperature is not None:
            th = plausible(temperature, humidity)
            if th is None:
                reading["fault"] = schema.FAULT_RANGE
            else:
                reading["temperature_c"], reading["humidity_pct"] = th
        reading["co2_ppm"] = co2
        alarm, event = hysteresis(co2, st.get("a", False), self._setting("co2_high", HIGH_PPM),
                                  self._setting("co2_low", LOW_PPM))
        st["a"] = alarm
        return reading, [event] if event else []

    def command(self, name, arg):
        if name == "set_thresholds":
            new = thresholds(arg, self._setting("co2_high", HIGH_PPM),
                             self._setting("co2_low", LOW_PPM))
            if new is None:
                return 2
            self._save_settings(co2_high=new[0], co2_low=new[1])
            return 0
        if name != "forced_recalibration":
            return None  # not ours
        if not isinstance(arg, int) or not 400 <= arg <= 2000:
            return 2
        from sensors.errors import SensorError
        try:
            correction = self._sensor.forced_recalibration(arg)
        except ValueError:
            return 2
        except SensorError:
            self._state["c"] = 0
            return 3
        if correction is None:
            return 3
        self._state["r"] = None
        if self._chip == "mhz19b":
            self._save_settings(zero_offset_ppm=correction)
        return 0
