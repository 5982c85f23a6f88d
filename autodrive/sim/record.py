"""Recording: the expert drives the simulator headless and its frames and commands go into a tub."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from autodrive import channels
from autodrive.errors import AutodriveError
from autodrive.sim.expert import ExpertDriver
from autodrive.sim.world import SimWorld

log = logging.getLogger(__name__)

TUB_INPUTS = (
    channels.CAMERA_IMAGE,
    channels.USER_ANGLE,
    channels.USER_THROTTLE,
    channels.USER_MODE,
    channels.SIM_CTE,
    channels.SIM_SPEED,
)
TUB_TYPES = ("image_array", "float", "float", "str", "float", "float")

# Sleep between checks for room on the tub writer's queue. The simulation
# outruns JPEG encoding, and the writer drops records rather than block.
QUEUE_WAIT_S = 0.001


@dataclass(frozen=True)
class RecordResult:
    """Outcome of a recording run."""

    records: int            # records handed to the tub writer
    sim_time_s: float
    wall_time_s: float
    laps: int
    off_track_events: int
    recoveries: int         # drifts off the centre line that the expert steered back from

    @property
    def speedup(self) -> float:
        """Simulated seconds per wall-clock second."""
        return self.sim_time_s / self.wall_time_s if self.wall_time_s > 0 else float("inf")


def record(
    world: SimWorld,
    expert: ExpertDriver,
    writer,
    duration_s: float,
    queue_size: int,
    progress: Callable[[float], None] | None = None,
) -> RecordResult:
    """Drive ``expert`` on ``world`` for ``duration_s`` simulated seconds, writing records to ``writer``.

    Simulated time advances by ``world.dt_s`` per step with no sleeping, so
    this runs as fast as rendering and the tub writer allow. Before each
    write it waits while ``queue_size`` records are still queued, so no
    record is dropped. Frames where the expert drifts off the centre line on
    purpose are not recorded. ``progress(sim_time_s)`` is called about once
    per simulated second. ``writer`` is a TubWriter (or anything with its
    ``write``, ``pending`` and ``error``).

    Each record's ``_timestamp_ms`` is its simulated capture time: the
    wall-clock time at the start of the run plus the simulated time of the
    frame. Records are therefore ``1000 * world.dt_s`` ms apart, as on a car
    whose loop runs at ``drive.loop_hz``, however fast the simulation runs.
    """
    world.reset()
    started = time.perf_counter()
    start_ms = time.time_ns() // 1_000_000
    records = off_track_events = 0
    was_off = False
    next_report_s = 1.0

    while world.time_s < duration_s - 1e-9:
        frame = world.render()
        action = expert.drive(world.state, world.dt_s)
        telemetry = world.telemetry

        if action.record:
            while writer.pending >= queue_size:
                if writer.error is not None:
                    break
                time.sleep(QUEUE_WAIT_S)
            if writer.error is not None:
                raise AutodriveError(f"recording stopped: the tub writer failed: {writer.error}")
            writer.write({
                channels.CAMERA_IMAGE: frame,
                channels.USER_ANGLE: action.label_angle,
                channels.USER_THROTTLE: action.throttle,
                channels.USER_MODE: "user",
                channels.SIM_CTE: telemetry.cte_m,
                channels.SIM_SPEED: telemetry.speed_mps,
            }, timestamp_ms=start_ms + round(world.time_s * 1000))
            records += 1

        telemetry = world.step(action.angle, action.throttle)
        if telemetry.off_track and not was_off:
            off_track_events += 1
            log.warning("the expert left the lane at %.1f s (cross-track error %.2f m)",
                        telemetry.time_s, telemetry.cte_m)
        was_off = telemetry.off_track

        if progress is not None and telemetry.time_s >= next_report_s:
            progress(telemetry.time_s)
            next_report_s += 1.0

    return RecordResult(
        records=records,
        sim_time_s=world.time_s,
        wall_time_s=time.perf_counter() - started,
        laps=world.telemetry.laps,
        off_track_events=off_track_events,
        recoveries=expert.drifts,
    )
