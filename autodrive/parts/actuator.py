"""Steering servo and ESC on a PCA9685 PWM board, and the drivetrain factory.

Steering and throttle commands in [-1, 1] become pulse widths in µs through
three calibrated points each (``steering.left_us``/``center_us``/``right_us``,
``throttle.reverse_us``/``neutral_us``/``forward_us``), piecewise-linearly
through the centre. The board is reached through the real
``adafruit_pca9685.PCA9685`` driver on the bus from
``autodrive.hardware.create_i2c_bus``, which is the only hardware seam.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from autodrive import hardware
from autodrive.channels import SAFE_ANGLE, SAFE_THROTTLE
from autodrive.errors import ConfigError, NotAvailableError, PartError, require

log = logging.getLogger(__name__)

PCA9685_OSCILLATOR_HZ = 25_000_000
PCA9685_STEPS = 4096


@dataclass(frozen=True)
class PulseMap:
    """Pulse widths in µs for the command values -1, 0 and 1 of one channel."""

    low_us: float
    middle_us: float
    high_us: float

    def pulse_us(self, value: float) -> float:
        """Map ``value`` (clamped to [-1, 1]; NaN or None is 0) to a pulse width in µs."""
        if value is None or not math.isfinite(value):
            value = 0.0
        value = min(1.0, max(-1.0, float(value)))
        if value >= 0:
            return self.middle_us + value * (self.high_us - self.middle_us)
        return self.middle_us + value * (self.middle_us - self.low_us)


def steering_map(cfg: Any) -> PulseMap:
    """Return the steering PulseMap of ``cfg``: angle -1 is full left."""
    return PulseMap(cfg.steering.left_us, cfg.steering.center_us, cfg.steering.right_us)


def throttle_map(cfg: Any) -> PulseMap:
    """Return the throttle PulseMap of ``cfg``: throttle -1 is full reverse."""
    return PulseMap(cfg.throttle.reverse_us, cfg.throttle.neutral_us, cfg.throttle.forward_us)


class PCA9685Drivetrain:
    """Drive part for a steering servo and an ESC on one PCA9685 board.

    Inputs: ``safe/angle`` and ``safe/throttle`` in [-1, 1]. Add it with
    ``actuator=True`` so the drive loop calls ``neutral()`` before shutdown.

    Creating the part sets the PWM frequency and then writes centre and
    neutral, which arms the ESC; it never writes any other pulse first. A
    channel's LEDn registers are written only when its pulse changes by at
    least one PCA9685 step (about 4 µs at 60 Hz).

    ``esc_reverse_sequence`` makes every change from forward or stopped to
    reverse send the reverse pulse for ``reverse_brake_s`` (hobby ESCs read it
    as a brake), neutral for ``reverse_neutral_s``, then reverse. ``run()``
    steps through that sequence on successive calls without blocking.
    """

    def __init__(
        self,
        pca: Any,
        steering: PulseMap,
        throttle: PulseMap,
        steering_channel: int = 1,
        throttle_channel: int = 0,
        pwm_hz: float = 60.0,
        esc_reverse_sequence: bool = False,
        reverse_brake_s: float = 0.1,
        reverse_neutral_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ):
        if steering_channel == throttle_channel:
            raise ConfigError(
                f"steering.channel and throttle.channel are both {steering_channel}; "
                "give the servo and the ESC their own PCA9685 outputs"
            )
        self.pca = pca
        self.steering = steering
        self.throttle = throttle
        self.steering_channel = steering_channel
        self.throttle_channel = throttle_channel
        self.esc_reverse_sequence = esc_reverse_sequence
        self.reverse_brake_s = reverse_brake_s
        self.reverse_neutral_s = reverse_neutral_s
        self.clock = clock

        # adafruit_register shares one module-wide scratch buffer between all
        # registers and fills it before taking the bus lock, so every access
        # to the driver goes through this lock.
        self._lock = threading.Lock()
        self._ticks: dict[int, int] = {}
        self._closed = False
        self._last_throttle = 0.0
        self._reverse_started: float | None = None

        with self._lock:
            pca.frequency = pwm_hz
            self.pwm_hz = pca.frequency
        self.tick_us = 1e6 / (self.pwm_hz * PCA9685_STEPS)
        self._check_pulses_fit()

        self.neutral()
        log.info(
            "PCA9685 ready at %.2f Hz (requested %g Hz): steering on channel %d, ESC on channel %d armed at %g µs",
            self.pwm_hz, pwm_hz, steering_channel, throttle_channel, throttle.middle_us,
        )

    def _check_pulses_fit(self) -> None:
        period_us = 1e6 / self.pwm_hz
        longest_us = max(
            self.steering.low_us, self.steering.high_us, self.throttle.low_us, self.throttle.high_us
        )
        if longest_us >= period_us:
            raise ConfigError(
                f"a pulse of {longest_us:g} µs does not fit in one PWM period of {period_us:.0f} µs "
                f"at drivetrain.pwm_hz = {self.pwm_hz:.0f}; lower drivetrain.pwm_hz (servos and ESCs expect 50 to 60 Hz)"
            )

    # -- the part contract ---------------------------------------------------

    def run(self, angle: float | None, throttle: float | None) -> None:
        """Send the steering ``angle`` and ``throttle`` commands, both in [-1, 1]."""
        if self._closed:
            raise PartError("PCA9685Drivetrain used after shutdown()")
        throttle_pulse_us = self._throttle_pulse_us(throttle)
        self.write_pulse(self.steering_channel, self.steering.pulse_us(angle))
        self.write_pulse(self.throttle_channel, throttle_pulse_us)

    def neutral(self) -> None:
        """Write centre steering and neutral throttle, even when they are already set."""
        self._ticks.clear()
        self._last_throttle = 0.0
        self._reverse_started = None
        self.write_pulse(self.throttle_channel, self.throttle.middle_us)
        self.write_pulse(self.steering_channel, self.steering.middle_us)

    def shutdown(self) -> None:
        """Set neutral unless it is already set, and stop using the board.

        The board keeps sending the neutral pulses after the process ends.
        """
        if self._closed:
            return
        self.write_pulse(self.throttle_channel, self.throttle.middle_us)
        self.write_pulse(self.steering_channel, self.steering.middle_us)
        self._closed = True

    # -- pulses --------------------------------------------------------------

    def pulse_ticks(self, pulse_us: float) -> int:
        """Return the PCA9685 step count (out of 4096 per period) closest to ``pulse_us``."""
        return int(round(pulse_us / self.tick_us))

    def write_pulse(self, channel: int, pulse_us: float) -> bool:
        """Write ``pulse_us`` to ``channel`` unless it is already there; return True if written."""
        ticks = self.pulse_ticks(pulse_us)
        if self._ticks.get(channel) == ticks:
            return False
        if not 0 < ticks < PCA9685_STEPS:
            raise PartError(f"pulse of {pulse_us:g} µs is outside one PWM period at {self.pwm_hz:.1f} Hz")
        with self._lock:
            # The driver takes a 16-bit duty cycle and keeps its top 12 bits.
            self.pca.channels[channel].duty_cycle = ticks << 4
        self._ticks[channel] = ticks
        return True

    def _throttle_pulse_us(self, throttle: float | None) -> float:
        if throttle is None or not math.isfinite(throttle):
            throttle = 0.0
        previous = self._last_throttle
        self._last_throttle = throttle
        if not self.esc_reverse_sequence or throttle >= 0:
            self._reverse_started = None
            return self.throttle.pulse_us(throttle)

        now = self.clock()
        if previous >= 0:
            self._reverse_started = now
            log.debug("ESC reverse sequence started")
        elapsed_s = now - (self._reverse_started if self._reverse_started is not None else now)
        if elapsed_s < self.reverse_brake_s:
            return self.throttle.pulse_us(throttle)
        if elapsed_s < self.reverse_brake_s + self.reverse_neutral_s:
            return self.throttle.middle_us
        return self.throttle.pulse_us(throttle)


class NullDrivetrain:
    """Drive part that accepts steering and throttle commands and drives nothing."""

    def __init__(self) -> None:
        self._logged = False

    def run(self, angle: float | None, throttle: float | None) -> None:
        if not self._logged:
            log.info("drivetrain.type is none: steering and throttle commands are not sent to any motor")
            self._logged = True

    def neutral(self) -> None:
        """Do nothing: there is no motor to stop."""


def open_pca9685(cfg: Any, bus: Any = None) -> Any:
    """Return an ``adafruit_pca9685.PCA9685`` on the bus and address of ``cfg.drivetrain``.

    ``bus`` defaults to ``autodrive.hardware.create_i2c_bus(drivetrain.i2c_bus)``.
    Raises NotAvailableError when no board responds at the address.
    """
    driver = require("adafruit_pca9685", extra="pi")
    settings = cfg.drivetrain
    if bus is None:
        bus = hardware.create_i2c_bus(settings.i2c_bus)
    reference_hz = int(round(PCA9685_OSCILLATOR_HZ * settings.frequency_correction))
    try:
        return driver.PCA9685(bus, address=settings.i2c_address, reference_clock_speed=reference_hz)
    except (ValueError, OSError) as error:
        raise NotAvailableError(
            f"no PCA9685 responded at address {settings.i2c_address} (0x{settings.i2c_address:02x}) on I2C bus "
            f"{settings.i2c_bus} ({error}); check the wiring and drivetrain.i2c_address ('i2cdetect -y "
            f"{settings.i2c_bus}' lists the addresses that respond)"
        ) from error


def create_pca9685_drivetrain(cfg: Any, bus: Any = None, clock: Callable[[], float] = time.monotonic) -> PCA9685Drivetrain:
    """Build the PCA9685 drive part from ``cfg``; ``bus`` as in open_pca9685."""
    pca = open_pca9685(cfg, bus)
    return PCA9685Drivetrain(
        pca,
        steering_map(cfg),
        throttle_map(cfg),
        steering_channel=cfg.steering.channel,
        throttle_channel=cfg.throttle.channel,
        pwm_hz=cfg.drivetrain.pwm_hz,
        esc_reverse_sequence=cfg.drivetrain.esc_reverse_sequence,
        reverse_brake_s=cfg.throttle.reverse_brake_s,
        reverse_neutral_s=cfg.throttle.reverse_neutral_s,
        clock=clock,
    )


def find_pca9685(cfg: Any) -> tuple[Any, str]:
    """Return ``(bus, reason)``: the open I2C bus when a board responds at ``drivetrain.i2c_address``, else None."""
    settings = cfg.drivetrain
    if not hardware.i2c_bus_present(settings.i2c_bus):
        return None, f"there is no I2C bus {hardware.i2c_device_path(settings.i2c_bus)}"
    try:
        bus = hardware.create_i2c_bus(settings.i2c_bus)
        addresses = hardware.scan_i2c_bus(bus)
    except (ImportError, NotAvailableError, OSError, RuntimeError, ValueError) as error:
        return None, f"I2C bus {settings.i2c_bus} could not be scanned: {error}"
    if settings.i2c_address not in addresses:
        found = ", ".join(f"0x{address:02x}" for address in addresses) or "none"
        return None, f"nothing responds at 0x{settings.i2c_address:02x} on I2C bus {settings.i2c_bus} (found: {found})"
    return bus, f"a board responds at 0x{settings.i2c_address:02x} on I2C bus {settings.i2c_bus}"


def create_drivetrain(cfg: Any, sim: Any = None) -> Any:
    """Return the drive part that ``drivetrain.type`` selects.

    ``pca9685`` is the real board, ``sim`` the simulator's drivetrain,
    ``none`` a part that drives nothing, and ``auto`` the PCA9685 when a board
    responds on the bus, else the simulator, with one log line saying which
    and why. ``sim`` is the simulator world to use; by default it is the one
    ``autodrive.hardware.sim_world(cfg)`` shares with the camera.
    """
    kind = cfg.drivetrain.type
    if kind == "none":
        return NullDrivetrain()
    if kind == "pca9685":
        return create_pca9685_drivetrain(cfg)
    if kind == "auto":
        bus, reason = find_pca9685(cfg)
        if bus is not None:
            log.info("drivetrain.type auto: using the PCA9685 because %s", reason)
            return create_pca9685_drivetrain(cfg, bus)
        log.info("drivetrain.type auto: using the simulator because %s", reason)
    world = sim if sim is not None else hardware.sim_world(cfg)
    return world.drivetrain_part()


def add_drivetrain(vehicle: Any, part: Any, name: str = "drivetrain") -> Any:
    """Add a drive part to ``vehicle`` as its actuator, reading safe/angle and safe/throttle.

    The simulator's drivetrain also outputs sim/cte, sim/speed, sim/lap and
    sim/off_track. Returns the PartEntry.
    """
    from autodrive.sim.parts import DRIVETRAIN_OUTPUTS, SimDrivetrain

    outputs = DRIVETRAIN_OUTPUTS if isinstance(part, SimDrivetrain) else ()
    return vehicle.add(part, inputs=[SAFE_ANGLE, SAFE_THROTTLE], outputs=outputs, actuator=True, name=name)
