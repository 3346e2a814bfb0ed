"""protocol/ compiled to .mpy, as a board runs it, on the MicroPython unix port with an
ESP32-sized heap cap: one reading of each kind encodes, encrypts and MICs in 32 KB, and the
frames are byte for byte the ones CPython builds."""
import pytest

from protocol import frame, schema
from tools import mpybuild
from tools.samples import READINGS

ARGS = (bytes(range(16)).hex(), "12ab34", "70000")


@pytest.fixture(scope="module")
def mpy_tree(tmp_path_factory):
    return mpybuild.build_sealer(tmp_path_factory.mktemp("mpy"))


def expected_lines():
    keys = frame.Keys(bytes(range(16)))
    return ["%s %s" % (schema.kind_name(kind),
                       frame.seal(keys, kind, 0x12AB34, 70000 + i, schema.encode(kind, r)).hex())
            for i, (kind, r) in enumerate(READINGS)]


def test_protocol_compiles_to_mpy_without_sources_beside_it(mpy_tree):
    sources = sorted(p.stem for p in (mpybuild.ROOT / "protocol").glob("*.py"))
    assert sorted(p.name for p in (mpy_tree / "protocol").iterdir()) == [
        name + ".mpy" for name in sources]


def test_one_reading_of_each_kind_seals_in_a_32k_heap(mpy_tree):
    result = mpybuild.run(mpybuild.SEALER, [mpy_tree], heap="32K", args=ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == expected_lines()


def test_a_heap_too_small_fails_loudly_rather_than_sealing_wrong_frames(mpy_tree):
    result = mpybuild.run(mpybuild.SEALER, [mpy_tree], heap="16K", args=ARGS)
    assert result.returncode != 0
    # The unix port prints an uncaught exception's traceback on stdout.
    assert "MemoryError" in result.stdout + result.stderr
    assert not any(line.startswith("fill ") for line in result.stdout.splitlines())
