"""Config loading: defaults, myconfig.yaml, --set, and the errors for bad values."""

import subprocess
import sys
from pathlib import Path

import pytest

from autodrive.config import CAR_CONFIG_NAME, default_config, load_config, load_schema, schema
from autodrive.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write_car(tmp_path: Path, text: str) -> Path:
    (tmp_path / CAR_CONFIG_NAME).write_text(text, encoding="utf-8")
    return tmp_path


def test_defaults_load_without_car_file(tmp_path):
    config = load_config(tmp_path)

    assert config.drive.loop_hz == 20
    assert config.web.port == 8887
    assert config.camera.width == 160
    assert config.sources["drive.loop_hz"] == "default.yaml"


def test_every_key_has_description_and_unit_or_values():
    for name, spec in schema().items():
        assert spec.description, f"{name} has no description"
        if spec.kind == "number":
            assert spec.unit, f"{name} has no unit"


def test_every_section_of_design_present():
    sections = {name.split(".")[0] for name in schema()}

    expected = {"drive", "camera", "drivetrain", "steering", "throttle", "web", "recording", "pilot", "training", "sim", "sync"}
    assert expected <= sections


def test_car_file_overrides_defaults(tmp_path):
    car = write_car(tmp_path, "drive:\n  loop_hz: 30\ncamera:\n  width: 320\n  height: 240\n")

    config = load_config(car)

    assert config.drive.loop_hz == 30
    assert config.camera.width == 320
    assert config.sources["camera.width"] == CAR_CONFIG_NAME


def test_set_overrides_car_file(tmp_path):
    car = write_car(tmp_path, "drive:\n  loop_hz: 30\n")

    config = load_config(car, ["drive.loop_hz=50", "web.token=abc"])

    assert config.drive.loop_hz == 50
    assert config.web.token == "abc"
    assert config.sources["drive.loop_hz"] == "--set drive.loop_hz=50"


def test_integer_accepted_for_float_key(tmp_path):
    config = load_config(tmp_path, ["drive.max_throttle=1"])

    assert config.drive.max_throttle == 1.0
    assert isinstance(config.drive.max_throttle, float)


def test_null_accepted_only_where_allowed(tmp_path):
    config = load_config(tmp_path, ["pilot.model=null"])
    assert config.pilot.model is None

    with pytest.raises(ConfigError, match="camera.width must be"):
        load_config(tmp_path, ["camera.width=null"])


def test_empty_section_in_car_file_is_ignored(tmp_path):
    car = write_car(tmp_path, "drive:\ncamera:\n  width: 320\n")

    assert load_config(car).camera.width == 320


def test_with_overrides_returns_checked_copy():
    config = default_config()

    changed = config.with_overrides({"drive.loop_hz": 40})

    assert changed.drive.loop_hz == 40
    assert config.drive.loop_hz == 20
    with pytest.raises(ConfigError):
        config.with_overrides({"drive.loop_hz": 0})


def test_section_values_are_read_only():
    config = default_config()

    with pytest.raises(AttributeError):
        config.drive.loop_hz = 5
    with pytest.raises(AttributeError, match="drive.no_such_key"):
        _ = config.drive.no_such_key


BAD_CAR_FILES = [
    ("drive:\n  loop_hz: fast\n", "myconfig.yaml: drive.loop_hz must be a number from 1 to 200 (Hz), got 'fast'"),
    ("drive:\n  loop_hz: 500\n", "drive.loop_hz must be a number from 1 to 200 (Hz), got 500"),
    ("camera:\n  widht: 320\n", "unknown key 'camera.widht' (did you mean 'camera.width'?)"),
    ("camra:\n  width: 320\n", "unknown key 'camra.width' (did you mean 'camera.width'?)"),
    ("camera:\n  width: 160.5\n", "camera.width must be a whole number from 16 to 1920 (px), got 160.5"),
    ("camera:\n  type: webcam\n", "camera.type must be one of auto, sim, picamera2, opencv, replay, got 'webcam'"),
    ("drive:\n  mode: locl\n", "drive.mode must be one of user, local_angle, local, got 'locl' (did you mean 'local'?)"),
    ("camera:\n  vflip: yes please\n", "camera.vflip must be true or false, got 'yes please'"),
    ("web:\n  port: 70000\n", "web.port must be a whole number from 0 to 65535 (port), got 70000"),
    ("drive:\n  max_throttle: .nan\n", "drive.max_throttle must be a number from 0 to 1 (fraction), got nan"),
    ("drive:\n  max_throttle: true\n", "drive.max_throttle must be a number from 0 to 1 (fraction), got True"),
    ("steering:\n  left_us: 3000\n", "steering.left_us must be a whole number from 500 to 2500 (µs), got 3000"),
    ("steering:\n  left_us: 1100\n  right_us: 1100\n", "steering.left_us and steering.right_us are both 1100 µs"),
    ("throttle:\n  neutral_us: 2200\n", "throttle.neutral_us = 2200 µs is not between"),
    ("camra: 20\n", "unknown section 'camra' (did you mean 'camera'?)"),
    ("camera:\nwidth: 320\n", "unknown section 'width'; 'width' is a key of camera, so indent it under that section"),
    ("drive: 20\n", "section 'drive' must contain 'key: value' lines, got 20"),
    ("- drive\n- camera\n", "expected sections of 'key: value' lines, found list"),
    ("drive:\n  loop_hz: 20\n   mode: user\n", "invalid YAML"),
    ("training:\n  crop_top: 100\n  crop_bottom: 30\n", "leaves no rows of the 120 px camera frame"),
]


@pytest.mark.parametrize("text, message", BAD_CAR_FILES, ids=[case[1][:40] for case in BAD_CAR_FILES])
def test_bad_car_file_rejected(tmp_path, text, message):
    car = write_car(tmp_path, text)

    with pytest.raises(ConfigError) as raised:
        load_config(car)

    assert message in str(raised.value)


def test_yaml_error_names_line(tmp_path):
    car = write_car(tmp_path, "drive:\n  loop_hz: 20\n   mode: user\n")

    with pytest.raises(ConfigError) as raised:
        load_config(car)

    assert "myconfig.yaml:" in str(raised.value)
    assert "line 3" in str(raised.value)


@pytest.mark.parametrize(
    "option, message",
    [
        ("drive.loop_hz", "expected section.key=value"),
        ("loop_hz=3", "the key must be section.key"),
        ("drive.loop_hz=fast", "--set drive.loop_hz=fast: drive.loop_hz must be a number from 1 to 200"),
        ("camera.widht=3", "unknown key 'camera.widht' (did you mean 'camera.width'?)"),
    ],
)
def test_bad_set_option_rejected(tmp_path, option, message):
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path, [option])

    assert message in str(raised.value)


def test_schema_comment_without_values_rejected(tmp_path):
    broken = tmp_path / "default.yaml"
    broken.write_text("drive:\n  loop_hz: 20   # how fast it goes\n", encoding="utf-8")

    with pytest.raises(RuntimeError, match="cannot read the allowed values of drive.loop_hz"):
        load_schema(broken)


def test_cli_config_error_exits_2_without_traceback(tmp_path):
    write_car(tmp_path, "camera:\n  widht: 320\n")

    result = subprocess.run(
        [sys.executable, "-m", "autodrive", "--car", str(tmp_path), "drive"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )

    assert result.returncode == 2
    assert "myconfig.yaml: unknown key 'camera.widht' (did you mean 'camera.width'?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_set_error_after_subcommand_exits_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "autodrive", "drive", "--car", str(tmp_path), "--set", "drive.loop_hz=fast"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )

    assert result.returncode == 2
    assert "drive.loop_hz must be a number from 1 to 200 (Hz), got 'fast'" in result.stderr
    assert "Traceback" not in result.stderr


EXAMPLES = sorted((REPO / "config" / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_car_config_loads(tmp_path, example):
    (tmp_path / CAR_CONFIG_NAME).write_text(example.read_text(encoding="utf-8"), encoding="utf-8")

    config = load_config(tmp_path)

    overridden = [name for name, source in config.sources.items() if source == CAR_CONFIG_NAME]
    assert overridden, f"{example.name} overrides nothing"


def test_examples_present():
    assert len(EXAMPLES) >= 3
