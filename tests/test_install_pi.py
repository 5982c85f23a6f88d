"""scripts/install-pi.sh: shellcheck accepts it, and --dry-run prints every step without running it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "install-pi.sh"


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (apt install shellcheck)")
def test_shellcheck_passes():
    result = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout


def test_script_is_executable():
    assert SCRIPT.stat().st_mode & 0o111


def test_dry_run_prints_steps_and_changes_nothing(tmp_path):
    venv = tmp_path / "venv"
    car = tmp_path / "mycar"

    result = run_script("--dry-run", "--service", "--venv", str(venv), "--car", str(car))

    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert f"+ python3 -m venv --system-site-packages {venv}" in commands
    assert f"+ {venv}/bin/python -m pip install --upgrade autodrive\\[pi\\]" in commands
    assert f"+ {venv}/bin/autodrive createcar {car}" in commands
    assert "+ test -e /dev/i2c-1" in commands
    assert any(line.endswith(" --list-cameras") for line in commands)
    assert "+ sudo systemctl enable autodrive" in commands
    assert "journalctl -u autodrive -f" in result.stdout
    assert not venv.exists()
    assert not car.exists()


def test_dry_run_installs_only_missing_packages():
    result = run_script("--dry-run")

    assert result.returncode == 0, result.stderr
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "rsync"], capture_output=True, text=True).stdout
    apt_lines = [line for line in result.stdout.splitlines() if line.startswith("+ sudo apt-get install")]
    if "install ok installed" in installed:
        assert all(" rsync" not in line for line in apt_lines)
    else:
        assert any(" rsync" in line for line in apt_lines)


def test_dry_run_from_path_and_url(tmp_path):
    from_path = run_script("--dry-run", "--venv", str(tmp_path / "venv"), "--from", "/src/autodrive")
    from_url = run_script("--dry-run", "--venv", str(tmp_path / "venv"), "--from", "https://127.0.0.1/autodrive.whl")

    assert "pip install --upgrade /src/autodrive\\[pi\\]" in from_path.stdout
    assert "pip install --upgrade autodrive\\[pi\\]\\ @\\ https://127.0.0.1/autodrive.whl" in from_url.stdout


def test_existing_car_folder_is_kept(tmp_path):
    car = tmp_path / "mycar"
    car.mkdir()
    (car / "myconfig.yaml").write_text("# mine\n")

    result = run_script("--dry-run", "--venv", str(tmp_path / "venv"), "--car", str(car))

    assert result.returncode == 0, result.stderr
    assert "createcar" not in result.stdout
    assert (car / "myconfig.yaml").read_text() == "# mine\n"


def test_venv_without_system_packages_is_rejected(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\n")

    result = run_script("--dry-run", "--venv", str(venv))

    assert result.returncode == 1
    assert f"{venv} exists but cannot see the OS's picamera2" in result.stderr


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--venv", "relative/venv", "is not an absolute path"),
    ("--car", "/tmp/my car", "contains a space"),
    ("--colour", "", "unknown option '--colour'"),
])
def test_bad_options_rejected(option, value, message):
    result = run_script(option, *([value] if value else []))

    assert result.returncode == 1
    assert message in result.stderr
