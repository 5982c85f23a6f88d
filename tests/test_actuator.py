"""PCA9685 drivetrain: the real adafruit driver over a fake I2C bus that records every register write."""

import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autodrive import hardware
from autodrive.config import default_config
from autodrive.errors import ConfigError, MissingDependencyError, NotAvailableError, PartError
from autodrive.parts import actuator
from autodrive.parts.actuator import (
    NullDrivetrain, PCA9685Drivetrain, PulseMap, add_drivetrain, create_drivetrain, create_pca9685_drivetrain,
)
from autodrive.parts.cameras import add_camera, create_camera
from autodrive.sim.parts import SimCamera, SimDrivetrain
from autodrive.vehicle import Vehicle
from tests.fakes.i2c import MODE1, PRESCALE, FakeI2C, FakePCA9685, led_register

REPO = Path(__file__).resolve().parents[1]
OSCILLATOR_HZ = 25_000_000


def datasheet_prescale(pwm_hz, oscillator_hz=OSCILLATOR_HZ):
    return round(oscillator_hz / (4096 * pwm_hz)) - 1


def expected_ticks(pulse_us, pwm_hz, oscillator_hz=OSCILLATOR_HZ):
    """The LEDn_OFF count for a pulse, from the prescale the board really runs at."""
    step_s = (datasheet_prescale(pwm_hz, oscillator_hz) + 1) / oscillator_hz
    return round(pulse_us * 1e-6 / step_s)


def make_drivetrain(clock=None, **overrides):
    cfg = default_config(**overrides)
    bus = FakeI2C()
    kwargs = {"clock": clock} if clock else {}
    part = create_pca9685_drivetrain(cfg, bus, **kwargs)
    return part, bus, bus.devices[0x40], cfg


class FakeClock:
    def __init__(self):
        self.now_s = 100.0

    def __call__(self):
        return self.now_s


@pytest.mark.parametrize("pwm_hz", [50, 60])
def test_prescale_matches_datasheet(pwm_hz):
    part, bus, board, _ = make_drivetrain(drivetrain__pwm_hz=pwm_hz)

    assert board.prescale == datasheet_prescale(pwm_hz)
    assert board.ignored_prescale_writes == 0
    assert part.pwm_hz == pytest.approx(OSCILLATOR_HZ / 4096 / (datasheet_prescale(pwm_hz) + 1))


def test_prescale_with_frequency_correction():
    _, _, board, _ = make_drivetrain(drivetrain__frequency_correction=1.05)

    assert board.prescale == datasheet_prescale(60, OSCILLATOR_HZ * 1.05)


def test_board_awake_with_auto_increment():
    _, _, board, _ = make_drivetrain()

    assert not board.registers[MODE1] & 0x10
    assert board.registers[MODE1] & 0x20


@pytest.mark.parametrize("pwm_hz", [50, 60])
def test_led_registers_for_steering_pulses(pwm_hz):
    part, bus, board, cfg = make_drivetrain(drivetrain__pwm_hz=pwm_hz)
    channel = cfg.steering.channel
    cases = [(-1.0, 1900), (0.0, 1500), (1.0, 1100), (0.5, 1300), (-0.25, 1600)]

    for angle, pulse_us in cases:
        part.run(angle, 0.0)

        assert board.channel_ticks(channel) == (0, expected_ticks(pulse_us, pwm_hz)), f"angle {angle}"


def test_led_registers_for_throttle_pulses():
    part, bus, board, cfg = make_drivetrain(throttle__reverse_us=1200, throttle__forward_us=1700)
    channel = cfg.throttle.channel
    cases = [(1.0, 1700), (0.5, 1600), (0.0, 1500), (-0.5, 1350), (-1.0, 1200)]

    for throttle, pulse_us in cases:
        part.run(0.0, throttle)

        assert board.channel_ticks(channel) == (0, expected_ticks(pulse_us, 60)), f"throttle {throttle}"


def test_led_write_bytes_exact():
    part, bus, _, cfg = make_drivetrain()
    part.run(1.0, 0.0)

    last = bus.writes[-1]
    ticks = expected_ticks(1100, 60)
    assert last.address == 0x40
    assert last.register == led_register(cfg.steering.channel)
    assert last.payload == bytes([0, 0, ticks & 0xFF, ticks >> 8])


def test_arming_sets_frequency_then_neutral_first():
    _, bus, _, cfg = make_drivetrain()
    led_writes = [write for write in bus.writes if 0x06 <= write.register < 0x46]
    prescale_index = next(i for i, write in enumerate(bus.writes) if write.register == PRESCALE)

    assert bus.writes.index(led_writes[0]) > prescale_index
    assert led_writes[0].register == led_register(cfg.throttle.channel)
    assert bus.led_writes(cfg.throttle.channel) == [(0, expected_ticks(1500, 60))]
    assert bus.led_writes(cfg.steering.channel) == [(0, expected_ticks(1500, 60))]


def test_arming_never_sends_forward():
    _, bus, _, cfg = make_drivetrain()
    neutral = expected_ticks(cfg.throttle.neutral_us, 60)

    assert all(off == neutral for _, off in bus.led_writes(cfg.throttle.channel))


def test_unchanged_command_writes_nothing():
    part, bus, _, _ = make_drivetrain()
    part.run(0.3, 0.2)
    count = len(bus.writes)

    part.run(0.3, 0.2)
    part.run(0.3, 0.2)

    assert len(bus.writes) == count


def test_change_below_one_step_writes_nothing():
    part, bus, _, _ = make_drivetrain()
    part.run(0.5, 0.0)
    count = len(bus.writes)

    # 0.001 of the 400 µs half range is 0.4 µs, a tenth of one 4.08 µs step.
    part.run(0.501, 0.0)

    assert len(bus.writes) == count


def test_only_changed_channel_written():
    part, bus, _, cfg = make_drivetrain()
    part.run(0.5, 0.2)
    count = len(bus.writes)

    part.run(0.5, 0.4)

    new_writes = bus.writes[count:]
    assert [write.register for write in new_writes] == [led_register(cfg.throttle.channel)]


@pytest.mark.parametrize("bad", [None, math.nan, math.inf])
def test_invalid_command_is_neutral(bad):
    part, _, board, cfg = make_drivetrain()
    part.run(1.0, 1.0)

    part.run(bad, bad)

    assert board.channel_ticks(cfg.throttle.channel) == (0, expected_ticks(1500, 60))
    assert board.channel_ticks(cfg.steering.channel) == (0, expected_ticks(1500, 60))


def test_command_clamped_to_range():
    part, _, board, cfg = make_drivetrain()

    part.run(-3.0, 7.0)

    assert board.channel_ticks(cfg.steering.channel) == (0, expected_ticks(1900, 60))
    assert board.channel_ticks(cfg.throttle.channel) == (0, expected_ticks(2000, 60))


def test_vehicle_shutdown_writes_centre_and_neutral():
    part, bus, board, cfg = make_drivetrain()
    vehicle = Vehicle()
    vehicle.add(FixedCommands(0.8, 0.6), outputs=["safe/angle", "safe/throttle"])
    vehicle.add(part, inputs=["safe/angle", "safe/throttle"], actuator=True)

    report = vehicle.start(rate_hz=None, max_loops=3)

    assert report.clean
    neutral = expected_ticks(1500, 60)
    assert bus.led_writes(cfg.throttle.channel)[-2:] == [(0, expected_ticks(1800, 60)), (0, neutral)]
    assert bus.led_writes(cfg.steering.channel)[-2:] == [(0, expected_ticks(1180, 60)), (0, neutral)]
    assert board.channel_ticks(cfg.throttle.channel) == (0, neutral)
    assert board.channel_ticks(cfg.steering.channel) == (0, neutral)


def test_neutral_writes_even_when_unchanged():
    part, bus, _, _ = make_drivetrain()
    count = len(bus.writes)

    part.neutral()

    assert len(bus.writes) == count + 2


def test_run_after_shutdown_rejected():
    part, _, _, _ = make_drivetrain()
    part.shutdown()

    with pytest.raises(PartError, match="after shutdown"):
        part.run(0.0, 0.0)


def test_reverse_sequence_brake_neutral_reverse():
    clock = FakeClock()
    part, bus, board, cfg = make_drivetrain(
        clock=clock, drivetrain__esc_reverse_sequence=True,
        throttle__reverse_brake_s=0.2, throttle__reverse_neutral_s=0.1,
    )
    channel = cfg.throttle.channel
    part.run(0.0, 0.5)
    seen = []

    for step_s in (0.0, 0.1, 0.15, 0.1, 0.1):
        clock.now_s += step_s
        part.run(0.0, -0.5)
        seen.append(board.channel_ticks(channel)[1])

    reverse, neutral = expected_ticks(1250, 60), expected_ticks(1500, 60)
    assert seen == [reverse, reverse, neutral, reverse, reverse]


def test_reverse_without_sequence_is_direct():
    part, _, board, cfg = make_drivetrain()
    part.run(0.0, 0.5)

    part.run(0.0, -0.5)

    assert board.channel_ticks(cfg.throttle.channel) == (0, expected_ticks(1250, 60))


def test_pulse_map_piecewise_through_middle():
    pulses = PulseMap(1000, 1600, 2000)

    assert pulses.pulse_us(-1) == 1000
    assert pulses.pulse_us(-0.5) == 1300
    assert pulses.pulse_us(0) == 1600
    assert pulses.pulse_us(0.5) == 1800
    assert pulses.pulse_us(1) == 2000


def test_same_channel_twice_rejected():
    with pytest.raises(ConfigError, match="both 0"):
        make_drivetrain(steering__channel=0)


def test_pulse_longer_than_period_rejected():
    with pytest.raises(ConfigError, match="drivetrain.pwm_hz"):
        make_drivetrain(drivetrain__pwm_hz=600)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"steering__left_us": 1500, "steering__right_us": 1500, "steering__center_us": 1500}, "could not turn"),
        ({"steering__left_us": 3000}, "steering.left_us"),
        ({"throttle__forward_us": 400}, "throttle.forward_us"),
        ({"throttle__neutral_us": 2100}, "not between"),
    ],
)
def test_bad_calibration_is_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        default_config(**overrides)


def test_missing_board_names_address():
    cfg = default_config()
    bus = FakeI2C(devices={0x41: FakePCA9685()})

    with pytest.raises(NotAvailableError, match="0x40.*i2cdetect"):
        create_pca9685_drivetrain(cfg, bus)


def test_type_none_drives_nothing(caplog):
    part = create_drivetrain(default_config(drivetrain__type="none"))
    caplog.set_level(logging.INFO, logger="autodrive.parts.actuator")

    part.run(0.5, 0.5)
    part.run(0.2, 0.1)
    part.neutral()

    assert isinstance(part, NullDrivetrain)
    assert sum("drivetrain.type is none" in message for message in caplog.messages) == 1


def test_type_pca9685_uses_bus_factory(monkeypatch):
    monkeypatch.setenv(hardware.I2C_ENV, "tests.fakes.i2c:create_fake_bus")
    monkeypatch.delenv("FAKE_I2C_LOG", raising=False)

    part = create_drivetrain(default_config(drivetrain__type="pca9685"))

    assert isinstance(part, PCA9685Drivetrain)
    assert part.pca.i2c_device.i2c.devices[0x40].prescale == datasheet_prescale(60)


def test_auto_picks_pca9685_when_board_responds(monkeypatch, caplog):
    monkeypatch.setenv(hardware.I2C_ENV, "tests.fakes.i2c:create_fake_bus")
    monkeypatch.delenv("FAKE_I2C_LOG", raising=False)
    caplog.set_level(logging.INFO, logger="autodrive.parts.actuator")

    part = create_drivetrain(default_config())

    assert isinstance(part, PCA9685Drivetrain)
    assert any("using the PCA9685 because a board responds at 0x40" in message for message in caplog.messages)


def test_auto_without_bus_uses_simulator(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv(hardware.I2C_ENV, raising=False)
    monkeypatch.setattr(hardware, "i2c_device_path", lambda number: tmp_path / f"i2c-{number}")
    caplog.set_level(logging.INFO, logger="autodrive.parts.actuator")

    part = create_drivetrain(default_config())

    assert isinstance(part, SimDrivetrain)
    assert any("using the simulator because there is no I2C bus" in message for message in caplog.messages)


def test_sim_camera_and_drivetrain_share_world():
    cfg = default_config(camera__type="sim", drivetrain__type="sim")
    camera = create_camera(cfg)
    drivetrain = create_drivetrain(cfg)
    collect = []
    vehicle = Vehicle()
    add_camera(vehicle, camera)
    vehicle.add(FixedCommands(0.0, 0.5), outputs=["safe/angle", "safe/throttle"])
    add_drivetrain(vehicle, drivetrain)
    vehicle.add(CallbackPart(collect.append), inputs=["cam/image_array", "sim/speed"])

    report = vehicle.start(rate_hz=None, max_loops=10)

    assert report.clean, report.reason
    assert isinstance(camera, SimCamera)
    assert camera.world is drivetrain.world
    assert collect[-1][0].shape == (120, 160, 3)
    assert collect[-1][1] > 0


def test_sim_drive_loads_no_hardware_library():
    code = (
        "import sys\n"
        "from autodrive.config import default_config\n"
        "from autodrive.parts.actuator import create_drivetrain\n"
        "from autodrive.parts.cameras import create_camera\n"
        "cfg = default_config()\n"
        "camera = create_camera(cfg)\n"
        "drivetrain = create_drivetrain(cfg)\n"
        "drivetrain.run(0.1, 0.2)\n"
        "camera.run()\n"
        "print(type(camera).__name__, type(drivetrain).__name__)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'picamera2', 'board', 'busio', 'adafruit_pca9685', 'adafruit_blinka', 'adafruit_bus_device'}))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != hardware.I2C_ENV}

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["SimCamera SimDrivetrain", "[]"]


def test_pca9685_without_bus_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.delenv(hardware.I2C_ENV, raising=False)
    monkeypatch.setattr(hardware, "i2c_device_path", lambda number: tmp_path / f"i2c-{number}")

    with pytest.raises(NotAvailableError, match="I2C bus 1 .* not found.*drivetrain.type: sim"):
        create_drivetrain(default_config(drivetrain__type="pca9685"))


def test_missing_blinka_names_pip_extra(monkeypatch, tmp_path):
    device = tmp_path / "i2c-1"
    device.touch()
    monkeypatch.delenv(hardware.I2C_ENV, raising=False)
    monkeypatch.setattr(hardware, "i2c_device_path", lambda number: device)
    monkeypatch.setitem(sys.modules, "board", None)

    with pytest.raises(MissingDependencyError, match=r"pip install 'autodrive\[pi\]'"):
        hardware.create_i2c_bus(1)


def test_bad_bus_factory_rejected(monkeypatch):
    monkeypatch.setenv(hardware.I2C_ENV, "tests.fakes.i2c")

    with pytest.raises(ConfigError, match="module:function"):
        hardware.create_i2c_bus(1)


def test_import_loads_no_hardware_library():
    code = (
        "import sys, autodrive, autodrive.hardware, autodrive.parts.actuator, autodrive.parts.cameras, "
        "autodrive.commands.calibrate, autodrive.cli\n"
        "from autodrive.config import default_config\n"
        "from autodrive.parts.actuator import create_drivetrain\n"
        "create_drivetrain(default_config(drivetrain__type='none'))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'picamera2', 'board', 'busio', 'adafruit_pca9685', 'adafruit_blinka', 'adafruit_bus_device'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


class FixedCommands:
    """Part that outputs the same steering and throttle command on every loop."""

    def __init__(self, angle, throttle):
        self.commands = (angle, throttle)

    def run(self):
        return self.commands


class CallbackPart:
    """Part that passes its inputs, as one tuple, to ``function``."""

    def __init__(self, function):
        self.function = function

    def run(self, *values):
        self.function(values)
