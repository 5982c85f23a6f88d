"""SimWorld: one simulated car on one track, shared by the sim camera and drivetrain parts."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from autodrive.sim.physics import BicycleModel, CarParams, CarState
from autodrive.sim.render import (CameraParams, FloorMap, PinholeCamera, Renderer, draw_panorama,
                                  draw_track_map)
from autodrive.sim.track import Track
from autodrive.sim.variation import FrameVariation, VariationParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Telemetry:
    """The car's situation after a step, as published on the sim/* channels."""

    cte_m: float        # signed distance of the car's centre from the centre line, positive to the right
    speed_mps: float
    laps: int           # completed laps since the last reset
    off_track: bool     # True while one side of the car is outside the lane
    distance_m: float   # progress along the centre line since the last reset, negative when reversing
    time_s: float       # simulated time since the last reset


class SimWorld:
    """A car on a track: physics, telemetry and camera frames, all deterministic for a seed.

    Time advances only through ``step()``, by ``dt_s`` unless another step is
    given, so a run gives the same frames and telemetry however fast the
    computer is. The renderer and the floor map are built on first use,
    because the expert driver and the tests of physics need neither.
    """

    def __init__(
        self,
        track: Track,
        car: CarParams | None = None,
        camera: CameraParams | None = None,
        variation: VariationParams | None = None,
        seed: int = 0,
        dt_s: float = 0.05,
    ):
        self.track = track
        self.car = car or CarParams()
        self.camera = camera or CameraParams(forward_m=self.car.wheelbase_m)
        self.variation_params = variation or VariationParams()
        self.seed = seed
        self.dt_s = dt_s
        self.model = BicycleModel(self.car)
        self._renderer: Renderer | None = None
        self._floor_map: FloorMap | None = None
        self.reset()

    # -- state ---------------------------------------------------------------

    def reset(self, distance_m: float = 0.0, offset_m: float = 0.0) -> None:
        """Put the car, stopped, on the track ``distance_m`` along the centre line and ``offset_m`` right of it.

        The random streams for lighting and noise start again from the seed,
        so a reset world renders the same frames again.
        """
        self.time_s = 0.0
        self._progress_m = 0.0
        self.place(distance_m, offset_m)
        self.rng = np.random.default_rng(self.seed)
        self._variation: FrameVariation | None = None
        self.telemetry = self._measure()

    def place(self, distance_m: float, offset_m: float = 0.0) -> None:
        """Move the car, stopped, onto the track without touching lap progress or time."""
        half_wheelbase = self.car.wheelbase_m / 2
        centre_x, centre_y = self.track.point_at(distance_m, offset_m)
        heading = self.track.locate(centre_x, centre_y).heading_rad
        self.state = CarState(
            centre_x - half_wheelbase * math.cos(heading),
            centre_y - half_wheelbase * math.sin(heading),
            heading,
        )
        self._last_distance_m = self.track.locate(centre_x, centre_y).distance_m

    def centre_xy(self) -> tuple[float, float]:
        """Return the floor point halfway between the axles, in metres."""
        state = self.state
        half = self.car.wheelbase_m / 2
        return state.x_m + half * math.cos(state.heading_rad), state.y_m + half * math.sin(state.heading_rad)

    def step(self, angle: float, throttle: float, dt_s: float | None = None) -> Telemetry:
        """Advance the car by ``dt_s`` (default ``self.dt_s``) under the commands; return the new telemetry.

        ``None`` or a non-finite command counts as 0 (straight ahead, stop).
        """
        dt = self.dt_s if dt_s is None else dt_s
        angle = _finite_or_zero(angle)
        throttle = _finite_or_zero(throttle)
        self.state = self.model.step(self.state, angle, throttle, dt)
        self.time_s += dt
        self.telemetry = self._measure()
        return self.telemetry

    def _measure(self) -> Telemetry:
        where = self.track.locate(*self.centre_xy())
        length = self.track.length_m
        self._progress_m += math.remainder(where.distance_m - self._last_distance_m, length)
        self._last_distance_m = where.distance_m
        laps = max(0, int(math.floor(self._progress_m / length + 1e-9)))
        # NOTE: the car is treated as a width across the centre line, so a car at an
        # angle to the lane (corners further out) counts as off the track a little late.
        off_track = abs(where.cte_m) + self.car.width_m / 2 > self.track.lane_width_m / 2
        return Telemetry(where.cte_m, self.state.speed_mps, laps, off_track, self._progress_m, self.time_s)

    # -- camera --------------------------------------------------------------

    @property
    def renderer(self) -> Renderer:
        """The camera renderer, built on first use (about 0.2 s for a built-in track)."""
        if self._renderer is None:
            self._floor_map = draw_track_map(self.track, self.seed)
            self._renderer = Renderer(PinholeCamera(self.camera), self._floor_map, draw_panorama(self.seed),
                                      seed=self.seed)
            log.debug("simulator renderer built: %dx%d px, floor map %s px",
                      self.camera.width_px, self.camera.height_px, self._floor_map.levels[0].shape[1::-1])
        return self._renderer

    def render(self, variation: bool = True) -> np.ndarray:
        """Return the camera frame at the current pose (RGB uint8, H x W x 3).

        With ``variation`` the configured lighting, noise and blur are applied,
        drawn from the world's seeded random stream.
        """
        state = self.state
        frame = self.renderer.render(state.x_m, state.y_m, state.heading_rad)
        if variation:
            if self._variation is None:
                self._variation = FrameVariation(self.variation_params, frame.shape, self.rng)
            if self._variation.active:
                frame = self._variation.apply(frame)
        return frame

    # -- parts ---------------------------------------------------------------

    def camera_part(self) -> "SimCamera":
        """Return a drive-loop part that outputs cam/image_array, cam/capture_time, cam/frame_number."""
        from autodrive.sim.parts import SimCamera

        return SimCamera(self)

    def drivetrain_part(self) -> "SimDrivetrain":
        """Return a drive-loop part (add it with actuator=True) that takes safe/angle, safe/throttle."""
        from autodrive.sim.parts import SimDrivetrain

        return SimDrivetrain(self)


def _finite_or_zero(value: float | None) -> float:
    if value is None:
        return 0.0
    value = float(value)
    return value if math.isfinite(value) else 0.0
