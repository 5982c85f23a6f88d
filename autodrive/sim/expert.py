"""Expert driver: pure pursuit along the centre line, with noise and recoveries for training data.

Pure pursuit steers the rear axle onto a circle through a target point on
the centre line a lookahead distance ahead. A recovery makes the driver
drift to a target off the centre line and then steer back. The drift is
marked ``record=False``, so a tub contains only the steering back, which
teaches a pilot to return to the centre rather than to wander off it. Steering noise
is added to the command the car executes, while the tub keeps the clean
command (the expert's label for that frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from autodrive.sim.physics import CarParams, CarState
from autodrive.sim.track import Track

LOOKAHEAD_MIN_M = 0.45
LOOKAHEAD_PER_MPS = 0.3       # extra lookahead per m/s of speed
CURVE_SLOWDOWN = 0.35         # throttle drops by this fraction per 1/m of curvature ahead, up to half
DRIFT_TIMEOUT_S = 3.0
DRIFT_TOLERANCE_M = 0.03


@dataclass(frozen=True)
class ExpertAction:
    """Commands of the expert for one step, and the label a tub records for it."""

    angle: float           # steering to execute, noise included
    throttle: float
    label_angle: float     # steering without noise: the label to record
    record: bool           # False while drifting away from the centre line on purpose


class ExpertDriver:
    """Pure-pursuit driver for a track; deterministic for a given ``rng``."""

    def __init__(
        self,
        track: Track,
        car: CarParams,
        throttle: float = 0.5,
        steer_noise: float = 0.0,
        recovery_interval_s: float | None = None,
        recovery_offset_m: float = 0.2,
        rng: np.random.Generator | None = None,
    ):
        self.track = track
        self.car = car
        self.throttle = throttle
        self.steer_noise = steer_noise
        self.recovery_interval_s = recovery_interval_s
        self.recovery_offset_m = recovery_offset_m
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.max_wheel_rad = math.radians(car.max_steer_deg)
        self.target_offset_m = 0.0
        self.drift_time_s = 0.0
        self.next_drift_s = self._draw_drift_wait()
        self.drifts = 0

    def _draw_drift_wait(self) -> float:
        if not self.recovery_interval_s:
            return math.inf
        return float(self.rng.exponential(self.recovery_interval_s))

    def drive(self, state: CarState, dt_s: float) -> ExpertAction:
        """Return the commands for the next ``dt_s`` seconds from the car's state."""
        self._update_recovery(state, dt_s)
        label = self.steer(state, self.target_offset_m)
        angle = label
        if self.steer_noise > 0:
            angle = float(np.clip(label + self.rng.normal(0.0, self.steer_noise), -1.0, 1.0))
        return ExpertAction(angle, self.throttle_for(state), label, record=self.target_offset_m == 0.0)

    def steer(self, state: CarState, offset_m: float = 0.0) -> float:
        """Return the pure-pursuit steering (-1..1) towards the line ``offset_m`` right of the centre line."""
        wheelbase = self.car.wheelbase_m
        heading = state.heading_rad
        front_x = state.x_m + wheelbase * math.cos(heading)
        front_y = state.y_m + wheelbase * math.sin(heading)
        here = self.track.locate(front_x, front_y)

        lookahead = LOOKAHEAD_MIN_M + LOOKAHEAD_PER_MPS * abs(state.speed_mps)
        target_x, target_y = self.track.point_at(here.distance_m + lookahead - wheelbase, offset_m)

        dx, dy = target_x - state.x_m, target_y - state.y_m
        forward = dx * math.cos(heading) + dy * math.sin(heading)
        left = -dx * math.sin(heading) + dy * math.cos(heading)
        distance = math.hypot(forward, left)
        if distance < 1e-6:
            return 0.0
        # Circle through the rear axle and the target: curvature 2 * left / distance².
        wheel = math.atan(2.0 * wheelbase * left / (distance * distance))
        return float(np.clip(-wheel / self.max_wheel_rad, -1.0, 1.0))

    def throttle_for(self, state: CarState) -> float:
        """Return the throttle: ``self.throttle``, less in bends ahead."""
        here = self.track.locate(state.x_m, state.y_m)
        curvature = max(abs(self.track.curvature_at(here.distance_m + ahead)) for ahead in (0.3, 0.7, 1.1))
        slowdown = min(0.5, CURVE_SLOWDOWN * curvature)
        return self.throttle * (1.0 - slowdown)

    def _update_recovery(self, state: CarState, dt_s: float) -> None:
        if self.target_offset_m == 0.0:
            self.next_drift_s -= dt_s
            if self.next_drift_s <= 0.0:
                side = 1.0 if self.rng.random() < 0.5 else -1.0
                self.target_offset_m = side * self.recovery_offset_m
                self.drift_time_s = 0.0
                self.drifts += 1
            return

        self.drift_time_s += dt_s
        half = self.car.wheelbase_m / 2
        centre = self.track.locate(state.x_m + half * math.cos(state.heading_rad),
                                   state.y_m + half * math.sin(state.heading_rad))
        reached = abs(centre.cte_m - self.target_offset_m) < DRIFT_TOLERANCE_M
        if reached or self.drift_time_s > DRIFT_TIMEOUT_S:
            self.target_offset_m = 0.0
            self.next_drift_s = self._draw_drift_wait()


class ExpertPilot:
    """The expert driver behind the pilot interface ``run(image) -> (angle, throttle)``.

    It ignores the image and reads the world's true pose, so it measures what
    a perfect pilot scores in ``evaluate``.
    """

    def __init__(self, world, expert: ExpertDriver):
        self.world = world
        self.expert = expert

    def run(self, image: np.ndarray) -> tuple[float, float]:
        action = self.expert.drive(self.world.state, self.world.dt_s)
        return action.angle, action.throttle


def make_expert(world, cfg=None, noise: bool = True) -> ExpertDriver:
    """Return the expert driver for ``world`` with the ``sim.expert_*`` settings of ``cfg``.

    With ``noise=False`` it drives without steering noise and recoveries.
    """
    rng = np.random.default_rng([world.seed, 1])
    if cfg is None:
        return ExpertDriver(world.track, world.car, rng=rng)
    sim = cfg.sim
    return ExpertDriver(
        world.track,
        world.car,
        throttle=sim.expert_throttle,
        steer_noise=sim.expert_steer_noise if noise else 0.0,
        recovery_interval_s=sim.expert_recovery_interval_s if noise else None,
        recovery_offset_m=sim.expert_recovery_offset_m,
        rng=rng,
    )
