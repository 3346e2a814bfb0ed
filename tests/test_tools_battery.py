"""tools/battery: the life estimate from a node's energy account."""
import json
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.battery import life_days
from tools.mpybuild import ROOT


def test_life_is_usable_charge_over_daily_use():
    # 24 µAh every 10 min = 3.456 mAh/day; no self-discharge: 3400 * 0.8 / 3.456 days
    assert life_days(3400, 24, 600, usable=0.8, self_discharge_pct_year=0) == pytest.approx(
        787.04, abs=0.01)


@given(st.floats(100, 20000), st.floats(0.1, 5000), st.integers(10, 86400))
def test_more_charge_per_cycle_or_more_cycles_never_lasts_longer(capacity, cycle, interval):
    base = life_days(capacity, cycle, interval)
    assert life_days(capacity, cycle * 2, interval) < base
    assert life_days(capacity, cycle, max(10, interval // 2)) <= base


def test_bad_numbers_are_refused():
    with pytest.raises(ValueError):
        life_days(0, 10, 600)


def test_the_command_measures_a_virtual_node_and_prints_json():
    result = subprocess.run([str(ROOT / "tools" / "battery"), "--capacity-mah", "3400",
                             "--kind", "fill", "--json"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    # Wi-Fi joining dominates a cycle's charge: tens of µAh, not a few
    assert 10 < out["cycle_uah"] < 200 and 100 < out["days"] < 5000
