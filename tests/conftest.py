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
