"""The simulator as drive-loop parts: a camera and a drivetrain sharing one SimWorld.

Add the camera first and the drivetrain last, like the real camera and
PCA9685 parts, so each frame shows the pose after the previous loop's
commands. ``autodrive.parts.actuator.add_drivetrain`` adds any drivetrain as
the actuator and connects the simulator's outputs (``DRIVETRAIN_OUTPUTS``):

    vehicle.add(world.camera_part(), outputs=[CAMERA_IMAGE, CAMERA_TIME, CAMERA_FRAME])
    ...
    add_drivetrain(vehicle, world.drivetrain_part())

Each drivetrain run advances the simulation by the world's fixed step,
``1 / drive.loop_hz`` (the loop period), not by the wall-clock time since the
previous run. A loop that keeps its rate therefore runs the simulation in
real time, a loop that overruns slows the simulated world down with it
instead of making the car jump, and the same commands always give the same
path.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from autodrive import channels
from autodrive.sim.world import SimWorld

log = logging.getLogger(__name__)

CAMERA_OUTPUTS = (channels.CAMERA_IMAGE, channels.CAMERA_TIME, channels.CAMERA_FRAME)
DRIVETRAIN_INPUTS = (channels.SAFE_ANGLE, channels.SAFE_THROTTLE)
DRIVETRAIN_OUTPUTS = (channels.SIM_CTE, channels.SIM_SPEED, channels.SIM_LAP, channels.SIM_OFF_TRACK)


class SimCamera:
    """Camera part: renders the world's current view at each run.

    Outputs the RGB uint8 frame, its capture time (``time.monotonic()``
    seconds, like the real cameras) and its number, from 0.
    """

    def __init__(self, world: SimWorld):
        self.world = world
        self.frame_number = -1
        self._closed = False

    def run(self) -> tuple[np.ndarray, float, int]:
        if self._closed:
            raise RuntimeError("the sim camera was shut down; create a new one with SimWorld.camera_part()")
        frame = self.world.render()
        self.frame_number += 1
        return frame, time.monotonic(), self.frame_number

    def shutdown(self) -> None:
        if not self._closed:
            log.debug("sim camera stopped after %d frames", self.frame_number + 1)
        self._closed = True


class SimDrivetrain:
    """Drivetrain part: applies steering and throttle to the simulated car.

    Inputs are the final ``safe/angle`` and ``safe/throttle`` (-1..1; None
    or NaN counts as 0). Each run advances the world by its fixed step and
    outputs ``sim/cte`` (m), ``sim/speed`` (m/s), ``sim/lap`` (completed laps)
    and ``sim/off_track``.
    """

    def __init__(self, world: SimWorld):
        self.world = world
        self.angle = 0.0
        self.throttle = 0.0
        self._off_track = False

    def run(self, angle: float | None, throttle: float | None) -> tuple[float, float, int, bool]:
        telemetry = self.world.step(angle, throttle)
        self.angle, self.throttle = angle, throttle
        if telemetry.off_track != self._off_track:
            self._off_track = telemetry.off_track
            if telemetry.off_track:
                log.info("sim: car left the lane (cross-track error %.2f m)", telemetry.cte_m)
            else:
                log.info("sim: car is back in the lane")
        return telemetry.cte_m, telemetry.speed_mps, telemetry.laps, telemetry.off_track

    def neutral(self) -> None:
        """Centre the steering and stop the car: its speed is set to 0 at once."""
        self.angle = 0.0
        self.throttle = 0.0
        state = self.world.state
        state.speed_mps = 0.0

    def shutdown(self) -> None:
        self.neutral()
