"""The autodrive command: help, version, createcar, and packaging of its data folders."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from autodrive import __version__
from autodrive.commands.createcar import create_car
from autodrive.config import load_config, schema
from autodrive.errors import AutodriveError

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=REPO):
    return subprocess.run(
        [sys.executable, "-m", "autodrive", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120,
    )


def test_help_lists_every_command():
    result = run_cli("--help")

    assert result.returncode == 0
    for name in ("createcar", "drive", "train", "sync", "calibrate", "tub", "sim", "models"):
        assert name in result.stdout


def test_version_printed():
    result = run_cli("--version")

    assert result.returncode == 0
    assert __version__ in result.stdout


def test_unknown_command_is_usage_error():
    result = run_cli("fly")

    assert result.returncode == 2
    assert "No such command 'fly'" in result.stderr


def test_createcar_makes_folders_and_config(tmp_path):
    car = tmp_path / "mycar"

    result = run_cli("createcar", str(car))

    assert result.returncode == 0, result.stderr
    for folder in ("data", "models", "logs"):
        assert (car / folder).is_dir()
    text = (car / "myconfig.yaml").read_text(encoding="utf-8")
    assert load_config(car).values == load_config(tmp_path / "empty").values
    for name in schema():
        key = name.split(".")[1]
        assert f"  # {key}:" in text, f"{name} is missing from the generated myconfig.yaml"


def test_createcar_uncommented_key_takes_effect(tmp_path):
    car = create_car(tmp_path / "mycar")
    config_file = car / "myconfig.yaml"
    text = config_file.read_text(encoding="utf-8")

    config_file.write_text(text.replace("# loop_hz: 20", "loop_hz: 35", 1), encoding="utf-8")

    assert load_config(car).drive.loop_hz == 35
    assert isinstance(yaml.safe_load(config_file.read_text(encoding="utf-8")), dict)


def test_createcar_refuses_existing_car(tmp_path):
    car = create_car(tmp_path / "mycar")
    (car / "myconfig.yaml").write_text("drive:\n  loop_hz: 30\n", encoding="utf-8")

    result = run_cli("createcar", str(car))

    assert result.returncode == 1
    assert "already a car folder" in result.stderr
    assert "--force" in result.stderr
    assert "loop_hz: 30" in (car / "myconfig.yaml").read_text(encoding="utf-8")


def test_createcar_force_keeps_data(tmp_path):
    car = create_car(tmp_path / "mycar")
    (car / "data" / "keep.txt").write_text("recorded", encoding="utf-8")

    create_car(car, force=True)

    assert (car / "data" / "keep.txt").read_text(encoding="utf-8") == "recorded"


def test_createcar_on_file_rejected(tmp_path):
    target = tmp_path / "file"
    target.write_text("x", encoding="utf-8")

    with pytest.raises(AutodriveError, match="exists and is not a folder"):
        create_car(target)


def test_wheel_carries_templates_and_config(tmp_path):
    pytest.importorskip("hatchling", reason="hatchling builds the wheel; pip install 'autodrive[dev]'")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    wheel = next(tmp_path.glob("autodrive-*.whl"))

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")

    assert "autodrive/_data/config/default.yaml" in names
    assert any(name.startswith("autodrive/_data/templates/") for name in names)
    found = subprocess.run(
        [sys.executable, "-c", "from autodrive.resources import config_dir, templates_dir; print(config_dir()); print(templates_dir())"],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    config_path, templates_path = found.stdout.split()
    assert config_path == str(tmp_path / "site" / "autodrive" / "_data" / "config")
    assert templates_path == str(tmp_path / "site" / "autodrive" / "_data" / "templates")


def test_import_autodrive_loads_no_heavy_library():
    code = (
        "import sys, autodrive, autodrive.cli, autodrive.vehicle, autodrive.config\n"
        "heavy = [m for m in ('tensorflow', 'picamera2', 'board', 'busio', 'adafruit_pca9685', 'ai_edge_litert', 'matplotlib') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
