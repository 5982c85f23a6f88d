"""`autodrive calibrate`: find the steering and throttle pulse widths of a car, interactively.

The session moves one PCA9685 channel at a time: keys change the pulse in
small steps, Enter accepts it, and the accepted values are written into the
car's myconfig.yaml with its comments kept (ruamel.yaml round trip).
Steering pulses are sent as they change. A throttle pulse other than the
armed neutral is only sent as a test that the person starts, at most
``throttle.calibrate_limit_us`` from neutral and for
``throttle.calibrate_test_s``, after which the ESC goes back to neutral.

Without a PCA9685, ``AUTODRIVE_I2C=module:function`` (see autodrive.hardware)
runs the session over a fake I2C bus; the tests use it.
"""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from autodrive.commands._common import common_options
from autodrive.config import CAR_CONFIG_NAME
from autodrive.errors import ConfigError, NotAvailableError, require

log = logging.getLogger(__name__)

SMALL_STEP_US = 10
LARGE_STEP_US = 100
MIN_PULSE_US = 500
MAX_PULSE_US = 2500

# Key sequences as terminals send them: letters, arrows, shift+arrows.
STEP_KEYS = {
    "a": -SMALL_STEP_US,
    "d": SMALL_STEP_US,
    "A": -LARGE_STEP_US,
    "D": LARGE_STEP_US,
    "\x1b[D": -SMALL_STEP_US,
    "\x1b[C": SMALL_STEP_US,
    "\x1bOD": -SMALL_STEP_US,
    "\x1bOC": SMALL_STEP_US,
    "\x1b[1;2D": -LARGE_STEP_US,
    "\x1b[1;2C": LARGE_STEP_US,
}
ACCEPT_KEYS = {"\r", "\n"}
TEST_KEYS = {" ", "t"}
QUIT_KEYS = {"q", "Q", "\x1b", "\x03"}
KEY_PATTERN = re.compile(r"\x1b\[[0-9;]*[A-Za-z~]|\x1bO[A-Za-z]|.", re.DOTALL)


class CalibrationQuit(Exception):
    """The person quit the session; nothing is saved."""


@dataclass
class Step:
    """One value to calibrate: the config key, its channel, and how to explain it."""

    key: str
    channel: int
    pulse_us: int
    title: str
    advice: str
    throttle_test: bool = False


class TerminalKeys:
    """Single key presses from a terminal in cbreak mode, with a timeout."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stdin
        self.fd = self.stream.fileno()
        self._saved: Any = None
        self._pending: list[str] = []

    def __enter__(self) -> "TerminalKeys":
        import termios
        import tty

        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        import termios

        termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def read_key(self, timeout_s: float | None = None) -> str | None:
        """Return the next key (a character or an escape sequence), or None after ``timeout_s``."""
        if not self._pending:
            ready, _, _ = select.select([self.fd], [], [], timeout_s)
            if not ready:
                return None
            data = os.read(self.fd, 64).decode("utf-8", errors="replace")
            if not data:
                raise CalibrationQuit("the terminal closed")
            self._pending.extend(KEY_PATTERN.findall(data))
        return self._pending.pop(0)


class CalibrationSession:
    """Runs the steps on a PCA9685Drivetrain and returns the accepted pulse widths."""

    def __init__(self, drivetrain: Any, cfg: Any, keys: TerminalKeys, echo: Any = click.echo):
        self.drivetrain = drivetrain
        self.keys = keys
        self.echo = echo
        self.limit_us = cfg.throttle.calibrate_limit_us
        self.test_s = cfg.throttle.calibrate_test_s
        self.neutral_us = cfg.throttle.neutral_us
        self.armed_neutral_us = cfg.throttle.neutral_us

    def run(self, steps: list[Step]) -> dict[str, int]:
        """Calibrate each step in turn; raise CalibrationQuit when the person quits."""
        chosen: dict[str, int] = {}
        for step in steps:
            if step.key == "throttle.neutral_us":
                step.pulse_us = self.neutral_us
            elif step.throttle_test:
                step.pulse_us = self._limit_throttle(step.pulse_us)
            self.echo("")
            self.echo(f"{step.title}: {step.advice}")
            chosen[step.key] = self._run_step(step)
            if step.key == "throttle.neutral_us":
                self.neutral_us = chosen[step.key]
        return chosen

    def _run_step(self, step: Step) -> int:
        pulse_us = step.pulse_us
        if not step.throttle_test:
            self.drivetrain.write_pulse(step.channel, pulse_us)
        test_ends: float | None = None
        self._show(step, pulse_us, test_ends)

        while True:
            timeout_s = None if test_ends is None else max(0.0, test_ends - time.monotonic())
            key = self.keys.read_key(timeout_s)
            if test_ends is not None:
                # A test ends when its time is up or at any key press.
                self._end_test(step)
                test_ends = None
                if key is None or key in TEST_KEYS:
                    self._show(step, pulse_us, test_ends)
                    continue
            if key is None:
                continue
            if key in QUIT_KEYS:
                raise CalibrationQuit("quit")
            if key in ACCEPT_KEYS:
                self.echo("")
                return pulse_us
            if key in TEST_KEYS and step.throttle_test:
                self.drivetrain.write_pulse(step.channel, pulse_us)
                test_ends = time.monotonic() + self.test_s
            elif key in STEP_KEYS:
                pulse_us = self._bounded(step, pulse_us + STEP_KEYS[key])
                if not step.throttle_test:
                    self.drivetrain.write_pulse(step.channel, pulse_us)
            self._show(step, pulse_us, test_ends)

    def _end_test(self, step: Step) -> None:
        self.drivetrain.write_pulse(step.channel, self.armed_neutral_us)

    def _bounded(self, step: Step, pulse_us: int) -> int:
        pulse_us = min(MAX_PULSE_US, max(MIN_PULSE_US, pulse_us))
        if step.key == "throttle.neutral_us":
            return min(self.armed_neutral_us + self.limit_us, max(self.armed_neutral_us - self.limit_us, pulse_us))
        if step.throttle_test:
            return self._limit_throttle(pulse_us)
        return pulse_us

    def _limit_throttle(self, pulse_us: int) -> int:
        return min(self.neutral_us + self.limit_us, max(self.neutral_us - self.limit_us, pulse_us))

    def _show(self, step: Step, pulse_us: int, test_ends: float | None) -> None:
        text = f"{step.key} = {pulse_us} µs"
        if step.throttle_test:
            text += f" ({pulse_us - self.neutral_us:+d} µs from neutral, limit ±{self.limit_us})"
            if test_ends is not None:
                text += f"  RUNNING for {self.test_s:g} s, any key stops"
            else:
                text += "  stopped: space runs a test"
        self.echo(f"\r\x1b[K{text}", nl=False)


def calibration_steps(cfg: Any, channel: str) -> list[Step]:
    """Return the steps for ``channel`` ("steering", "throttle" or "all"), starting from the current values."""
    steering = cfg.steering
    throttle = cfg.throttle
    steps = []
    if channel in ("steering", "all"):
        steps += [
            Step("steering.center_us", steering.channel, steering.center_us, "Steering centre",
                 "change the pulse until the front wheels point straight ahead."),
            Step("steering.left_us", steering.channel, steering.left_us, "Steering full left",
                 "change the pulse until the wheels are fully left without the servo straining (buzzing)."),
            Step("steering.right_us", steering.channel, steering.right_us, "Steering full right",
                 "change the pulse until the wheels are fully right without the servo straining."),
        ]
    if channel in ("throttle", "all"):
        steps += [
            Step("throttle.neutral_us", throttle.channel, throttle.neutral_us, "Throttle neutral",
                 "the ESC is armed at the configured neutral; space tests another value, which should not turn the wheels.",
                 throttle_test=True),
            Step("throttle.forward_us", throttle.channel, throttle.forward_us, "Throttle forward",
                 "space runs the motor at this pulse; choose the fastest forward speed the car should ever reach.",
                 throttle_test=True),
            Step("throttle.reverse_us", throttle.channel, throttle.reverse_us, "Throttle reverse",
                 "space runs the motor at this pulse; many ESCs need two tests (brake, then reverse).",
                 throttle_test=True),
        ]
    return steps


def save_values(config_file: Path, values: dict[str, int]) -> None:
    """Write ``section.key`` values into ``config_file``, keeping its comments and other keys.

    The file is created when missing and replaced atomically, so an error
    while writing leaves the old file as it was.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml = YAML()
    data = yaml.load(config_file) if config_file.exists() else None
    if data is None:
        data = CommentedMap()
    if not isinstance(data, dict):
        raise ConfigError(f"{config_file}: expected sections of 'key: value' lines; fix the file and calibrate again")

    for name, value in values.items():
        section, key = name.split(".", 1)
        if data.get(section) is None:
            data[section] = CommentedMap()
        data[section][key] = value

    temporary = config_file.with_name(config_file.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as stream:
        yaml.dump(data, stream)
    if config_file.exists():
        shutil.copymode(config_file, temporary)
    os.replace(temporary, config_file)


@click.command(name="calibrate")
@click.option("--channel", type=click.Choice(["all", "steering", "throttle"]), default="all", show_default=True,
              help="Which channel to calibrate.")
@common_options
def command(app: Any, channel: str) -> None:
    """Find the steering and throttle pulse widths of a car and save them to myconfig.yaml.

    Lift the car so its wheels are off the ground before calibrating the throttle.
    """
    from autodrive.parts.actuator import create_pca9685_drivetrain

    cfg = app.config()
    # Checked now rather than at saving, so a missing library does not cost
    # the user a finished calibration.
    require("ruamel.yaml", extra="pi")
    if not sys.stdin.isatty():
        raise NotAvailableError("'autodrive calibrate' needs an interactive terminal; run it in an ssh or local shell")
    config_file = Path(app.car_path) / CAR_CONFIG_NAME
    if not config_file.parent.is_dir():
        raise NotAvailableError(f"car folder {config_file.parent} not found; create it with 'autodrive createcar' or pass --car")

    drivetrain = create_pca9685_drivetrain(cfg)
    settings = cfg.drivetrain
    click.echo(
        f"PCA9685 at 0x{settings.i2c_address:02x} on I2C bus {settings.i2c_bus}, {drivetrain.pwm_hz:.1f} Hz; "
        f"steering on channel {cfg.steering.channel}, ESC on channel {cfg.throttle.channel} (armed at neutral)."
    )
    click.echo("Lift the car so its wheels are off the ground.")
    click.echo(
        f"Keys: a/d or left/right change the pulse by {SMALL_STEP_US} µs, A/D or shift+left/right by "
        f"{LARGE_STEP_US} µs, Enter accepts, q quits without saving."
    )

    try:
        with TerminalKeys() as keys:
            session = CalibrationSession(drivetrain, cfg, keys)
            values = session.run(calibration_steps(cfg, channel))
    except CalibrationQuit:
        click.echo("\nQuit: nothing saved.")
        return
    finally:
        drivetrain.neutral()
        drivetrain.shutdown()

    overrides = dict(values)
    try:
        cfg.with_overrides(overrides, source="calibrate")
    except ConfigError as error:
        listing = ", ".join(f"{name}={value}" for name, value in values.items())
        raise ConfigError(f"the chosen values are not usable, so nothing was saved ({listing}): {error}") from None

    save_values(config_file, values)
    for name, value in values.items():
        click.echo(f"{name}: {value} µs")
    click.echo(f"Saved to {config_file}")
    log.info("calibration saved to %s: %s", config_file, values)
