# Typed sensor errors: a driver raises one of these, never returns suspect data; the app
# turns it into the fault bit of the reading (protocol.schema.FAULT_*).
from protocol.schema import FAULT_BUS, FAULT_CRC, FAULT_RANGE, FAULT_TIMEOUT


class SensorError(Exception):
    fault = FAULT_BUS


class BusError(SensorError):
    fault = FAULT_BUS


class CRCError(SensorError):
    fault = FAULT_CRC


class SensorTimeout(SensorError):
    fault = FAULT_TIMEOUT


class RangeError(SensorError):
    fault = FAULT_RANGE
