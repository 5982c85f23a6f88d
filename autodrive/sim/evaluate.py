"""Evaluation: let a pilot drive the simulator headless and measure how well it keeps to the lane."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import cv2
import numpy as np

from autodrive.errors import AutodriveError
from autodrive.sim.world import SimWorld

log = logging.getLogger(__name__)

VIDEO_SCALE = 3


class Pilot(Protocol):
    def run(self, image: np.ndarray) -> tuple[float, float]: ...


@dataclass(frozen=True)
class EvaluationResult:
    """Figures of one evaluation run."""

    laps: int
    laps_requested: int
    autonomy: float             # share of simulated time with the car inside the lane, 0..1
    mean_abs_cte_m: float
    max_abs_cte_m: float
    off_track_events: int       # times the car left the lane
    resets: int                 # times the car was put back on the centre line
    mean_speed_mps: float
    sim_time_s: float
    steps: int
    stop_reason: str

    def summary(self) -> str:
        """Return the figures as lines of text for the terminal."""
        return "\n".join([
            f"laps completed:      {self.laps} of {self.laps_requested}",
            f"autonomy:            {self.autonomy * 100:.1f} % of the time on the track",
            f"cross-track error:   mean {self.mean_abs_cte_m:.3f} m, max {self.max_abs_cte_m:.3f} m",
            f"off-track events:    {self.off_track_events} ({self.resets} resets to the centre line)",
            f"mean speed:          {self.mean_speed_mps:.2f} m/s",
            f"simulated time:      {self.sim_time_s:.1f} s in {self.steps} steps ({self.stop_reason})",
        ])


class EvaluationError(AutodriveError, RuntimeError):
    """The pilot returned something other than two numbers, or the video could not be written."""


def evaluate(
    world: SimWorld,
    pilot: Pilot,
    laps: int,
    max_lap_time_s: float = 60.0,
    reset_after_s: float | None = 2.0,
    video_path: Path | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> EvaluationResult:
    """Drive ``pilot`` on ``world`` from the start line until it completes ``laps`` laps.

    Each step renders a frame, passes it to ``pilot.run(frame)`` and applies
    the returned (angle, throttle) for one world step. The run stops early
    when a lap takes longer than ``max_lap_time_s`` of simulated time, so a run
    with a pilot that does not move or drives in circles ends too. A car that stays
    off the track for ``reset_after_s`` seconds is put back, stopped, on the
    nearest point of the centre line, as a person would carry it back
    (None leaves it where it is). ``video_path`` writes every frame, with
    the commands drawn on it, as an mp4 file. ``progress(laps, time_s)`` is
    called after each completed lap.
    """
    if laps < 1:
        raise ValueError(f"laps must be at least 1, got {laps}")
    world.reset()
    video = _open_video(video_path, world) if video_path is not None else None

    steps = on_track_steps = off_track_events = resets = 0
    cte_sum = cte_max = speed_sum = 0.0
    off_track_s = 0.0
    lap_started_s = 0.0
    laps_done = 0
    was_off = False
    stop_reason = f"{laps} laps completed"

    try:
        while True:
            frame = world.render()
            angle, throttle = _commands(pilot.run(frame))
            if video is not None:
                video.write(_annotate(frame, angle, throttle, world))

            telemetry = world.step(angle, throttle)
            steps += 1
            cte = abs(telemetry.cte_m)
            cte_sum += cte
            cte_max = max(cte_max, cte)
            speed_sum += abs(telemetry.speed_mps)

            if telemetry.off_track:
                off_track_s += world.dt_s
                if not was_off:
                    off_track_events += 1
                if reset_after_s is not None and off_track_s >= reset_after_s:
                    where = world.track.locate(*world.centre_xy())
                    world.place(where.distance_m)
                    resets += 1
                    off_track_s = 0.0
            else:
                on_track_steps += 1
                off_track_s = 0.0
            was_off = telemetry.off_track

            if telemetry.laps > laps_done:
                laps_done = telemetry.laps
                lap_started_s = telemetry.time_s
                if progress is not None:
                    progress(laps_done, telemetry.time_s)
                if laps_done >= laps:
                    break
            if telemetry.time_s - lap_started_s > max_lap_time_s:
                stop_reason = f"lap {laps_done + 1} took longer than {max_lap_time_s:g} s"
                break
    finally:
        if video is not None:
            video.release()

    return EvaluationResult(
        laps=laps_done,
        laps_requested=laps,
        autonomy=on_track_steps / steps,
        mean_abs_cte_m=cte_sum / steps,
        max_abs_cte_m=cte_max,
        off_track_events=off_track_events,
        resets=resets,
        mean_speed_mps=speed_sum / steps,
        sim_time_s=world.time_s,
        steps=steps,
        stop_reason=stop_reason,
    )


def _commands(output) -> tuple[float, float]:
    try:
        angle, throttle = output
        angle, throttle = float(angle), float(throttle)
    except (TypeError, ValueError) as error:
        raise EvaluationError(f"the pilot's run() must return (angle, throttle), got {output!r}") from error
    return (angle if math.isfinite(angle) else 0.0), (throttle if math.isfinite(throttle) else 0.0)


def _open_video(path: Path, world: SimWorld) -> cv2.VideoWriter:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = (world.camera.width_px * VIDEO_SCALE, world.camera.height_px * VIDEO_SCALE)
    fps = 1.0 / world.dt_s
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise EvaluationError(f"cannot write the video {path}: OpenCV could not open an mp4v writer for it")
    return writer


def _annotate(frame: np.ndarray, angle: float, throttle: float, world: SimWorld) -> np.ndarray:
    """Return a BGR copy of ``frame``, enlarged, with the commands and the track state drawn on it."""
    big = cv2.resize(frame, None, fx=VIDEO_SCALE, fy=VIDEO_SCALE, interpolation=cv2.INTER_NEAREST)
    big = cv2.cvtColor(big, cv2.COLOR_RGB2BGR)
    height, width = big.shape[:2]
    telemetry = world.telemetry

    # Steering bar along the bottom edge, throttle bar up the right edge.
    centre = width // 2
    cv2.rectangle(big, (0, height - 14), (width - 1, height - 1), (40, 40, 40), -1)
    cv2.rectangle(big, (centre, height - 12), (centre + int(angle * (width // 2 - 2)), height - 3), (0, 200, 255), -1)
    bar_top = height - 14 - int(max(-1.0, min(1.0, throttle)) * (height // 2))
    cv2.rectangle(big, (width - 10, min(bar_top, height - 14)), (width - 3, max(bar_top, height - 14)), (0, 220, 0), -1)

    colour = (0, 0, 255) if telemetry.off_track else (255, 255, 255)
    lines = [
        f"angle {angle:+.2f}  throttle {throttle:+.2f}",
        f"cte {telemetry.cte_m:+.2f} m  {telemetry.speed_mps:.1f} m/s  lap {telemetry.laps}",
    ]
    for number, text in enumerate(lines):
        cv2.putText(big, text, (6, 18 + 18 * number), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(big, text, (6, 18 + 18 * number), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return big
