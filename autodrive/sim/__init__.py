"""The built-in simulator: a flat track, a bicycle-model car and its camera, as drive-loop parts.

``create_sim(cfg)`` builds a SimWorld from the ``sim:`` section (track, car,
camera mounting, variation), ``camera.width``/``camera.height`` and
``drive.loop_hz``. Its ``camera_part()`` and ``drivetrain_part()`` replace
the real camera and PCA9685 in the drive loop.
"""

from __future__ import annotations

import logging

from autodrive.sim.physics import CarParams
from autodrive.sim.render import CameraParams
from autodrive.sim.track import BUILTIN_TRACKS, Track, TrackError, make_track
from autodrive.sim.variation import VariationParams
from autodrive.sim.world import SimWorld, Telemetry

log = logging.getLogger(__name__)

__all__ = ["BUILTIN_TRACKS", "SimWorld", "Telemetry", "Track", "TrackError", "create_sim", "make_track"]


def create_sim(cfg, seed: int | None = None) -> SimWorld:
    """Build the SimWorld that ``cfg`` describes; ``seed`` overrides ``sim.seed``.

    Raises TrackError (a ConfigError) when ``sim.track`` is neither a
    built-in track nor a readable track file.
    """
    sim = cfg.sim
    track = make_track(sim.track, sim.lane_width_m, base=cfg.car_path)
    car = CarParams(
        wheelbase_m=sim.wheelbase_m,
        width_m=sim.car_width_m,
        max_steer_deg=sim.max_steer_deg,
        top_speed_mps=sim.top_speed_mps,
        speed_lag_s=sim.speed_lag_s,
        steer_rate_deg_s=sim.steer_rate_deg_s,
    )
    camera = CameraParams(
        width_px=cfg.camera.width,
        height_px=cfg.camera.height,
        height_m=sim.camera_height_m,
        pitch_deg=sim.camera_pitch_deg,
        fov_deg=sim.camera_fov_deg,
        forward_m=sim.wheelbase_m,
    )
    variation = VariationParams(sim.lighting_variation, sim.noise_std, sim.blur_max_px)
    world = SimWorld(
        track,
        car,
        camera,
        variation,
        seed=sim.seed if seed is None else seed,
        dt_s=1.0 / cfg.drive.loop_hz,
    )
    log.info("simulator: track %s (%.1f m, lane %.2f m), %dx%d camera, %.0f Hz steps",
             track.name, track.length_m, track.lane_width_m, camera.width_px, camera.height_px, cfg.drive.loop_hz)
    return world
