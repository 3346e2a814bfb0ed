"""The bench: which boards a run drives, the fixtures that put each in a known state, and the
technician's report. See README.md ("Run the bench").

    pytest hil_tests                                   # virtual boards, all four kinds
    pytest hil_tests --kind=co2                        # one kind
    pytest hil_tests --port=/dev/ttyUSB0 --kind=co2 --gateway=http://192.168.10.2:8080
    pytest hil_tests --bench=bench.toml --gateway=...  # several boards, one port each
"""
import datetime
import re
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hil_tests import report
from hil_tests.dut import PWRON_RESET, BenchDut
from hil_tests.gateway_api import GatewayAPI, free_port, read_inventory, write_inventory
from hil_tests.targets import (NeedsTechnician, SerialTarget, VirtualTarget,
                               firmware_version)
from hil_tests.virtual import kits
from hil_tests.virtual.board import deploy

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BoardSpec:
    name: str
    kind: str
    port: str = None
    device: str = None
    info: dict = field(default_factory=dict)   # what the run learnt: id, MAC, version, values


def pytest_addoption(parser):
    group = parser.getgroup("cityedge bench")
    group.addoption("--kind", action="append", choices=kits.KINDS + ("all",),
                    help="the sensor kind of the board (with --port); on virtual boards the "
                         "kinds to run (repeatable; default all four)")
    group.addoption("--firmware", default=str(ROOT / "firmware"),
                    help="the firmware folder: deployed to virtual boards, and the version a "
                         "bench board must carry (default: firmware/)")
    group.addoption("--gateway", default=None,
                    help="the gateway's HTTP API a bench board reports to, e.g. "
                         "http://192.168.10.2:8080 (virtual boards get a gateway of their own)")
    group.addoption("--inventory", default=None,
                    help="the fleet inventory (fleet.toml) the bench boards were provisioned "
                         "into: their config is checked against it")
    group.addoption("--device", default=None, help="the device id of the board on --port")
    group.addoption("--bench", default=None,
                    help="a bench file: one [[board]] table per board with port, kind and "
                         "device (several boards, one port each)")
    group.addoption("--technician", action="store_true",
                    help="a technician is at the bench: ask them for the stimuli only the "
                         "virtual board can give itself (otherwise those tests are skipped)")
    group.addoption("--prompt-timeout", type=float, default=120.0,
                    help="seconds a technician has for each action (default 120)")
    group.addoption("--report-dir", default=str(ROOT / "var" / "hil"),
                    help="where each board's report folder goes (default var/hil)")


def _port_name(port):
    """/dev/ttyUSB0 -> ttyUSB0, /dev/serial/by-id/usb-X -> serial-by-id-usb-X"""
    return port.replace("/dev/", "", 1).replace("/", "-")


def board_specs(config):
    bench = config.getoption("bench")
    port = config.getoption("port", default=None)
    kinds = config.getoption("kind") or []
    if bench:
        with open(bench, "rb") as f:
            boards = tomllib.load(f).get("board", [])
        specs = []
        for n, b in enumerate(boards, 1):
            if b.get("kind") not in kits.KINDS or not b.get("port"):
                raise pytest.UsageError("%s: board %d needs a port and a kind (one of %s)"
                                        % (bench, n, ", ".join(kits.KINDS)))
            specs.append(BoardSpec(b.get("device") or _port_name(b["port"]), b["kind"],
                                   port=b["port"], device=b.get("device")))
        return specs
    if port:
        if len(kinds) != 1 or kinds[0] == "all":
            raise pytest.UsageError("--port needs the board's sensor kind: --kind=fill, "
                                    "parking, co2 or luminaire")
        device = config.getoption("device")
        return [BoardSpec(device or _port_name(port), kinds[0], port=port, device=device)]
    if not kinds or "all" in kinds:
        kinds = list(kits.KINDS)
    return [BoardSpec("virtual-%s" % kind, kind) for kind in dict.fromkeys(kinds)]


def pytest_configure(config):
    config.addinivalue_line("markers", "kinds(*kinds): the test is about these sensor kinds only")
    config.addinivalue_line("markers", "stimulus: needs a change in the world; on a bench the "
                                       "technician makes it (--technician) or it is skipped")
    config.addinivalue_line("markers", "virtual_only(reason): only the virtual board can do this")
    config._hil_specs = None
    config._hil_started = datetime.datetime.now(datetime.timezone.utc)


def _specs(config):
    if config._hil_specs is None:
        config._hil_specs = board_specs(config)
    return config._hil_specs


def pytest_generate_tests(metafunc):
    if "board_spec" not in metafunc.fixturenames:
        return
    # Every test gets the same list (one board instance per spec for the whole run); tests
    # about other kinds are deselected below.
    specs = _specs(metafunc.config)
    metafunc.parametrize("board_spec", specs, ids=[s.name for s in specs], scope="session")


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        spec = getattr(item, "callspec", None) and item.callspec.params.get("board_spec")
        marker = item.get_closest_marker("kinds")
        if isinstance(spec, BoardSpec) and marker and spec.kind not in marker.args:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def firmware_dir(pytestconfig):
    path = Path(pytestconfig.getoption("firmware")).resolve()
    if not (path / "main.py").exists():
        raise pytest.UsageError("--firmware=%s holds no main.py: give the firmware folder"
                                % path)
    return path


@pytest.fixture(scope="session")
def expected_version(firmware_dir):
    return firmware_version(firmware_dir)


@pytest.fixture(scope="session")
def hil_work(tmp_path_factory):
    return tmp_path_factory.mktemp("hil")


@pytest.fixture(scope="session")
def virtual_fleet(pytestconfig, hil_work, firmware_dir):
    """For virtual boards: the firmware compiled once, an inventory of one device per kind,
    and a real gateway process that knows them."""
    from tools.fleet import Gateway
    image = deploy(hil_work / "image", firmware_dir=firmware_dir)
    devices = [("hil-%s" % kind, kind, 0x0A0000 + n, kits.kit(kind).INTERVAL)
               for n, kind in enumerate(kits.KINDS, 1)]
    keys = write_inventory(hil_work, devices)
    udp = free_port(socket.SOCK_DGRAM)
    gateway = Gateway(hil_work, udp, free_port())
    yield {"image": image, "keys": keys, "udp": udp, "gateway": GatewayAPI(gateway.url),
           "addr": {d[0]: d[2] for d in devices}, "log": hil_work / "gateway.log"}
    gateway.stop()


@pytest.fixture(scope="session")
def board(board_spec, pytestconfig, request):
    """The board under test (a bench board or a virtual one), for all its tests in a row."""
    if board_spec.port:
        target = SerialTarget(board_spec.port, board_spec.kind, name=board_spec.name,
                              technician=pytestconfig.getoption("technician"),
                              prompt_timeout=pytestconfig.getoption("prompt_timeout"))
        target.device_id = board_spec.device
        target.inventory = (read_inventory(pytestconfig.getoption("inventory"))
                            if pytestconfig.getoption("inventory") else None)
    else:
        fleet = request.getfixturevalue("virtual_fleet")
        device_id = "hil-%s" % board_spec.kind
        target = VirtualTarget(board_spec.kind, request.getfixturevalue("hil_work"),
                               fleet["image"], addr=fleet["addr"][device_id],
                               key=fleet["keys"][device_id], gateway_port=fleet["udp"],
                               device_id=device_id)
        target.inventory = {device_id: {"kind": board_spec.kind,
                                        "addr": "%06x" % fleet["addr"][device_id]}}
    target.spec = board_spec
    board_spec.info.setdefault("kind", board_spec.kind)
    board_spec.info.setdefault("port", board_spec.port or "virtual (%s)" % target.port)
    yield target
    target.close()
    board_spec.info["console_log"] = target.log_path
    if board_spec.port is None:
        board_spec.info["gateway_log"] = request.getfixturevalue("virtual_fleet")["log"]


@pytest.fixture
def embedded_services():
    """pytest-embedded opens every board, bench or virtual, through its serial service."""
    return "serial"


@pytest.fixture
def port(board):
    return board.port


@pytest.fixture
def dut(dut, board):
    """pytest-embedded's Dut on the board's port, wrapped (hil_tests/dut.py)."""
    return BenchDut(dut, board)


class Bench:
    """One test's view of the bench: the board, its console, the gateway it reports to."""

    def __init__(self, dut, board, gateway, spec, version):
        self.dut = dut
        self.board = board
        self.gateway = gateway
        self.spec = spec
        self.version = version

    @property
    def kind(self):
        return self.board.kind

    def record(self, name, value):
        """A measured value for the board's report."""
        self.spec.info.setdefault("values", {})[name] = value

    def reset(self):
        """Reset the board (RTS on a bench board, power cut on a virtual one) and wait for
        the node to start from power-on."""
        self.board.reset(self.dut.serial)
        return self.dut.expect_boot(PWRON_RESET, why="the board did not start after a reset: "
                                    "check its power and USB cable")

    def stimulus(self, name, instruction, apply=None):
        """Change the board's world. A virtual board runs ahead of the test (its sleeps take
        no time), so it is reset afterwards: every line from then on saw the change."""
        try:
            self.board.stimulus(name, instruction, apply)
        except NeedsTechnician as e:
            pytest.skip(str(e))
        if self.board.virtual:
            self.reset()

    def device_id(self):
        """The board's device id: known on virtual boards and from --device/--bench, else
        read from its config over the REPL."""
        if not getattr(self.board, "device_id", None):
            self.read_identity()
        return self.board.device_id

    def read_identity(self):
        """config.json and the chip's unique id (its MAC on an ESP32) over the REPL; the
        node cycles on afterwards."""
        dut = self.dut
        for attempt in range(3):
            # A Ctrl-C can land while the node is between two runs; then ask again.
            dut.at_repl()
            try:
                cfg = dut.repl_value("__import__('json').load(open('config.json'))")
                uid = dut.repl_value("__import__('binascii').hexlify(__import__('machine')"
                                     ".unique_id()).decode()")
                break
            except AssertionError:
                if attempt == 2:
                    raise
        dut.leave_repl()
        import ast
        try:
            cfg = ast.literal_eval(cfg)
        except (ValueError, SyntaxError):
            dut.fail("config.json on the board does not read back as a dict: %s" % cfg[:200])
        uid = uid.strip("'")
        self.spec.info["mac"] = ":".join(uid[i:i + 2] for i in range(0, len(uid), 2))
        self.spec.info["device_id"] = cfg.get("device_id")
        self.spec.info["config"] = cfg
        if not getattr(self.board, "device_id", None):
            self.board.device_id = cfg.get("device_id")
        return cfg

    def interval_s(self):
        """The node's interval as provisioned."""
        if self.board.virtual:
            return self.board.interval_s
        if "config" not in self.spec.info:
            self.read_identity()
        return self.spec.info["config"].get("interval_s", 600)

    def need_gateway(self):
        if self.gateway is None:
            pytest.skip("no gateway to check against: give --gateway=http://HOST:8080")
        return self.gateway


@pytest.fixture
def bench(dut, board, board_spec, pytestconfig, request, expected_version):
    """The board in a known state: reset, and started from power-on."""
    if board.virtual:
        gateway = request.getfixturevalue("virtual_fleet")["gateway"]
    else:
        url = pytestconfig.getoption("gateway")
        gateway = GatewayAPI(url) if url else None
    b = Bench(dut, board, gateway, board_spec, expected_version)
    version, _, _ = b.reset()
    board_spec.info["firmware"] = version
    return b


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A test whose board printed a traceback fails, whatever it checked: the firmware
    crashed (it sat at the REPL until its watchdog reset it)."""
    bench = item.funcargs.get("bench")
    try:
        result = yield
    except BaseException:
        if bench is not None:   # every failure says where the whole story is
            item.add_report_section("call", "bench", "full console log: %s%s" % (
                bench.dut.logfile, "\nboard log: %s" % bench.board.log_path
                if bench.board.log_path else ""))
        raise
    if bench is not None:
        crash = crashes(bench.dut.logfile)
        if crash:
            pytest.fail("the firmware crashed during this test (%s) and sat at the REPL until "
                        "its watchdog reset it:\n%s\n(full console log: %s)"
                        % (bench.board.name, crash, bench.dut.logfile), pytrace=False)
    return result


_STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def crashes(logfile):
    """The first traceback the board printed, if any."""
    try:
        with open(logfile, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for n, line in enumerate(lines):
        if "Traceback (most recent call last)" in line:
            tail = []
            for later in lines[n + 1:n + 40]:
                tail.append(later)
                if not _STAMP.sub("", later).startswith(" "):  # the exception line
                    break
            if tail and "KeyboardInterrupt" in tail[-1]:
                continue  # the bench's own Ctrl-C, on its way to the REPL
            return "\n".join([line] + tail)
    return None


# ------------------------------------------------------------------ the report


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    report.note(item, rep)


def pytest_sessionfinish(session, exitstatus):
    report.write(session.config, _specs(session.config) if session.config._hil_specs else [])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for line in report.written(config):
        terminalreporter.write_line("bench report: %s" % line)
