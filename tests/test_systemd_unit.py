"""systemd/autodrive.service: systemd accepts it, and it stops the car with a signal the drive loop handles."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "autodrive.service"
INSTALL_SCRIPT = REPO / "scripts" / "install-pi.sh"


def read_unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(text)
    return parser


def render_unit(venv: Path, car: Path) -> str:
    """Return the unit as scripts/install-pi.sh --service would install it."""
    result = subprocess.run(
        ["bash", str(INSTALL_SCRIPT), "--print-service", "--venv", str(venv), "--car", str(car)],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return result.stdout


def test_unit_stops_with_handled_signal():
    unit = read_unit(UNIT.read_text())
    service = unit["Service"]

    assert service["KillSignal"] in ("SIGTERM", "SIGINT")
    assert service["KillMode"] == "mixed"
    assert int(service["TimeoutStopSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert service["User"] == "pi"
    assert service["ExecStart"].split()[1:3] == ["drive", "--car"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_rendered_unit_fills_user_and_paths(tmp_path):
    venv = tmp_path / "venv"
    car = tmp_path / "mycar"

    unit = read_unit(render_unit(venv, car))

    service = unit["Service"]
    assert service["User"] == subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    assert service["ExecStart"] == f"{venv}/bin/autodrive drive --car {car}"
    assert service["WorkingDirectory"] == str(car)
    assert "/home/pi" not in render_unit(venv, car)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (apt install systemd)")
def test_systemd_analyze_verify_accepts_unit(tmp_path):
    # verify needs ExecStart to exist, so the unit is rendered for a folder with a real executable.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "autodrive").symlink_to(sys.executable)
    car = tmp_path / "mycar"
    car.mkdir()
    unit_file = tmp_path / "autodrive.service"
    unit_file.write_text(render_unit(venv, car))

    result = subprocess.run(["systemd-analyze", "verify", str(unit_file)], capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert "autodrive.service" not in result.stderr, result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (apt install systemd)")
def test_systemd_analyze_verify_rejects_missing_executable(tmp_path):
    unit_file = tmp_path / "autodrive.service"
    unit_file.write_text(render_unit(tmp_path / "no-venv", tmp_path))

    result = subprocess.run(["systemd-analyze", "verify", str(unit_file)], capture_output=True, text=True, timeout=120)

    assert result.returncode != 0
    assert "is not executable" in result.stderr
