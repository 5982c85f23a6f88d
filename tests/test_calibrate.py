"""`autodrive calibrate`: driven through a real terminal (pexpect) over the fake I2C bus."""

import os
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from autodrive.commands.calibrate import CalibrationQuit, CalibrationSession, Step, calibration_steps, save_values
from autodrive.config import default_config, load_config
from autodrive.parts.actuator import create_pca9685_drivetrain
from tests.fakes.i2c import FakeI2C, read_log, led_writes

REPO = Path(__file__).resolve().parents[1]
OSCILLATOR_HZ = 25_000_000

CAR_CONFIG = """\
# My race car.
drive:
  loop_hz: 25                 # faster loop for racing

steering:
  left_us: 1900               # measured by hand
  center_us: 1500
"""


def ticks(pulse_us, pwm_hz=60):
    prescale = round(OSCILLATOR_HZ / (4096 * pwm_hz)) - 1
    return round(pulse_us * 1e-6 * OSCILLATOR_HZ / (prescale + 1))


def spawn_calibrate(car, log_path, *args):
    env = dict(os.environ)
    env.update({
        "AUTODRIVE_I2C": "tests.fakes.i2c:create_fake_bus",
        "FAKE_I2C_LOG": str(log_path),
        "PYTHONPATH": str(REPO),
    })
    return pexpect.spawn(
        sys.executable, ["-m", "autodrive", "calibrate", "--car", str(car), *args],
        cwd=str(REPO), env=env, encoding="utf-8", timeout=30,
    )


def test_calibrate_in_terminal_saves_values(tmp_path):
    (tmp_path / "myconfig.yaml").write_text(CAR_CONFIG, encoding="utf-8")
    log_path = tmp_path / "i2c.jsonl"
    child = spawn_calibrate(tmp_path, log_path, "--set", "throttle.calibrate_test_s=0.5")

    child.expect("steering.center_us = 1500 µs")
    child.send("dd")
    child.expect("steering.center_us = 1520 µs")
    child.send("\r")
    child.expect("steering.left_us = 1900 µs")
    child.send("A")
    child.expect("steering.left_us = 1800 µs")
    child.send("\x1b[C")
    child.expect("steering.left_us = 1810 µs")
    child.send("\r")
    child.expect("steering.right_us = 1100 µs")
    child.send("\x1b[1;2D")
    child.expect("steering.right_us = 1000 µs")
    child.send("\r")
    child.expect("throttle.neutral_us = 1500 µs")
    child.send("\r")
    child.expect(r"throttle.forward_us = 1800 µs \(\+300 µs from neutral, limit ±300\)")
    child.send("D")
    child.expect("throttle.forward_us = 1800 µs")
    child.send("aaaaa")
    child.expect("throttle.forward_us = 1750 µs")
    child.send(" ")
    child.expect("RUNNING")
    child.expect("stopped: space runs a test")
    child.send("\r")
    child.expect("throttle.reverse_us = 1200 µs")
    child.send("D")
    child.expect("throttle.reverse_us = 1300 µs")
    child.send("\r")
    child.expect("Saved to")
    child.expect(pexpect.EOF)
    child.close()

    assert child.exitstatus == 0
    cfg = load_config(tmp_path)
    assert cfg.steering.center_us == 1520
    assert cfg.steering.left_us == 1810
    assert cfg.steering.right_us == 1000
    assert cfg.throttle.neutral_us == 1500
    assert cfg.throttle.forward_us == 1750
    assert cfg.throttle.reverse_us == 1300
    assert cfg.drive.loop_hz == 25
    text = (tmp_path / "myconfig.yaml").read_text(encoding="utf-8")
    assert text.startswith("# My race car.\n")
    assert "loop_hz: 25                 # faster loop for racing" in text
    assert "left_us: 1810               # measured by hand" in text

    writes = read_log(str(log_path))
    throttle = [off for _, off in led_writes(writes, channel=0)]
    steering = [off for _, off in led_writes(writes, channel=1)]
    assert throttle[0] == ticks(1500)
    assert max(throttle) == ticks(1750)
    assert throttle.index(ticks(1750)) + 1 < len(throttle)
    assert throttle[throttle.index(ticks(1750)) + 1] == ticks(1500)
    assert throttle[-1] == ticks(1500)
    assert ticks(1520) in steering
    assert ticks(1810) in steering
    assert ticks(1000) in steering
    assert steering[-1] == ticks(1500)


def test_calibrate_quit_saves_nothing(tmp_path):
    config_file = tmp_path / "myconfig.yaml"
    config_file.write_text(CAR_CONFIG, encoding="utf-8")
    child = spawn_calibrate(tmp_path, tmp_path / "i2c.jsonl", "--channel", "steering")

    child.expect("steering.center_us = 1500 µs")
    child.send("ddd")
    child.expect("steering.center_us = 1530 µs")
    child.send("q")
    child.expect("nothing saved")
    child.expect(pexpect.EOF)
    child.close()

    assert child.exitstatus == 0
    assert config_file.read_text(encoding="utf-8") == CAR_CONFIG


def test_calibrate_needs_terminal(tmp_path):
    env = dict(os.environ, AUTODRIVE_I2C="tests.fakes.i2c:create_fake_bus", PYTHONPATH=str(REPO))

    result = subprocess.run(
        [sys.executable, "-m", "autodrive", "calibrate", "--car", str(tmp_path)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
    )

    assert result.returncode == 1
    assert "needs an interactive terminal" in result.stderr


class ScriptedKeys:
    """Key source that returns scripted keys; None stands for a read that timed out."""

    def __init__(self, keys):
        self.keys = list(keys)
        self.timeouts = []

    def read_key(self, timeout_s=None):
        self.timeouts.append(timeout_s)
        if not self.keys:
            raise AssertionError("the session asked for more keys than the test scripted")
        return self.keys.pop(0)


def make_session(keys, **overrides):
    cfg = default_config(**overrides)
    bus = FakeI2C()
    drivetrain = create_pca9685_drivetrain(cfg, bus)
    session = CalibrationSession(drivetrain, cfg, ScriptedKeys(keys), echo=lambda *args, **kwargs: None)
    return session, bus, cfg


def throttle_step(cfg):
    return [step for step in calibration_steps(cfg, "throttle") if step.key == "throttle.forward_us"]


def test_throttle_test_limited_and_timed():
    session, bus, cfg = make_session(["D", "D", " ", None, "\r"], throttle__calibrate_limit_us=200)

    values = session.run(throttle_step(cfg))

    assert values == {"throttle.forward_us": 1700}
    assert [off for _, off in bus.led_writes(0)] == [ticks(1500), ticks(1700), ticks(1500)]
    assert session.keys.timeouts[3] == pytest.approx(cfg.throttle.calibrate_test_s, abs=0.5)


def test_throttle_pulse_not_sent_before_test():
    session, bus, cfg = make_session(["a", "a", "\r"])

    session.run(throttle_step(cfg))

    assert [off for _, off in bus.led_writes(0)] == [ticks(1500)]


def test_key_stops_running_test():
    session, bus, cfg = make_session([" ", "a", "\r"])

    values = session.run(throttle_step(cfg))

    assert values == {"throttle.forward_us": 1790}
    assert [off for _, off in bus.led_writes(0)] == [ticks(1500), ticks(1800), ticks(1500)]


def test_neutral_bounded_by_limit():
    session, _, cfg = make_session(["D"] * 5 + ["\r"], throttle__calibrate_limit_us=150)
    neutral = [step for step in calibration_steps(cfg, "throttle") if step.key == "throttle.neutral_us"]

    values = session.run(neutral)

    assert values == {"throttle.neutral_us": 1650}


def test_steering_sent_as_it_changes():
    session, bus, cfg = make_session(["d", "d", "\r"])
    steps = [step for step in calibration_steps(cfg, "steering") if step.key == "steering.center_us"]

    session.run(steps)

    assert [off for _, off in bus.led_writes(1)] == [ticks(1500), ticks(1510), ticks(1520)]


def test_quit_raises():
    session, _, cfg = make_session(["q"])

    with pytest.raises(CalibrationQuit):
        session.run(calibration_steps(cfg, "steering"))


def test_save_creates_missing_file(tmp_path):
    config_file = tmp_path / "myconfig.yaml"

    save_values(config_file, {"steering.left_us": 1850, "throttle.forward_us": 1700})

    cfg = load_config(tmp_path)
    assert cfg.steering.left_us == 1850
    assert cfg.throttle.forward_us == 1700


def test_save_keeps_createcar_comments(tmp_path):
    from autodrive.commands.createcar import create_car

    create_car(tmp_path / "car")
    config_file = tmp_path / "car" / "myconfig.yaml"
    before = config_file.read_text(encoding="utf-8")

    save_values(config_file, {"steering.center_us": 1490})

    after = config_file.read_text(encoding="utf-8")
    comments_before = [line for line in before.splitlines() if line.startswith("#")]
    comments_after = [line for line in after.splitlines() if line.startswith("#")]
    assert comments_after == comments_before
    assert load_config(tmp_path / "car").steering.center_us == 1490
