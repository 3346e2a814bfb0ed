import pytest

from tests.runtimes import CPython, MicroPython


@pytest.fixture(scope="session")
def micropython():
    rt = MicroPython()
    yield rt
    rt.close()


@pytest.fixture(params=["cpython", "micropython"])
def runtime(request):
    """The same test on both runtimes: calls go to protocol/ on CPython, or on MicroPython."""
    if request.param == "cpython":
        return CPython()
    return request.getfixturevalue("micropython")


@pytest.fixture(scope="session")
def micropython_apps():
    """MicroPython for the firmware's pure functions (apps, driver checksums), imported from
    source side by side: a roomy heap, since the heap a node needs is measured on virtual
    boards (tests/firmware, bench/node_cycle), not here."""
    rt = MicroPython(heap="1M")
    yield rt
    rt.close()
