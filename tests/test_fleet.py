"""The main job: the gateway with a virtual fleet of every kind, end to end."""
import socket
import subprocess
import sys

from tests.gateway.broker import free_port
from tools.mpybuild import ROOT



def test_the_fleet_delivers_readings_of_every_kind_to_the_gateway(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tools.fleet", "--hours", "0.5", "--per-kind", "1",
         "--work", str(tmp_path / "fleet"), "--http-port", str(free_port()),
         "--udp-port", str(free_port(socket.SOCK_DGRAM))],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if "-0001" in line]
    assert len(rows) == 4, result.stdout
    for row in rows:
        cells = [c.strip() for c in row.split("│")]
        assert int(cells[3]) > 0, row  # uplinks accepted by the gateway
