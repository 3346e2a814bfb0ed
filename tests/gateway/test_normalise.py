# Timestamps in records: RFC 3339 UTC with milliseconds, the same as datetime writes them,
# whatever order times come in (the formatted second is reused between calls).
import datetime

from hypothesis import given
from hypothesis import strategies as st

from gateway.normalise import iso

TIMES = st.floats(min_value=0, max_value=4102444800, allow_nan=False)


def _reference(t):
    ms = int(t) * 1000 + round((t - int(t)) * 1000)  # to the nearest millisecond
    dt = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)


@given(st.lists(TIMES, min_size=1, max_size=5))
def test_iso_matches_datetime_in_any_order(times):
    for t in times + [times[0] + 0.9996, times[0] + 1]:
        assert iso(t) == _reference(t), t


def test_iso_rounds_up_into_the_next_second():
    assert iso(1764466085.9996) == "2025-11-30T01:28:06.000Z"
    assert iso(1764466085.0004) == "2025-11-30T01:28:05.000Z"
