"""`autodrive sim`: record training data and evaluate pilots on the built-in simulator, headless."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from autodrive.commands._common import AppContext, common_options

log = logging.getLogger(__name__)


@click.group(name="sim", help="Record and evaluate on the built-in simulator, headless and faster than real time.")
def command() -> None:
    pass


@command.command(name="record")
@click.option("--minutes", type=click.FloatRange(min=0.05), default=5.0, show_default=True,
              help="Simulated driving time to record, in minutes.")
@click.option("--tub", "tub_path", type=click.Path(file_okay=False), default=None,
              help="Tub folder to record into (default: recording.tub of the car folder).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed instead of sim.seed.")
@common_options
def record_command(app: AppContext, minutes: float, tub_path: str | None, seed: int | None) -> None:
    """Let the expert driver drive the simulator and record its frames and commands into a tub.

    Simulated time advances by 1 / drive.loop_hz per frame without waiting,
    so 5 minutes of driving record in well under 5 minutes. Settings come
    from the sim: section (track, expert_throttle, expert_steer_noise,
    expert_recovery_*); recoveries are recorded only while steering back.
    """
    from autodrive.sim import create_sim
    from autodrive.sim.expert import make_expert
    from autodrive.sim.record import TUB_INPUTS, TUB_TYPES, record
    from autodrive.tub import TubWriter

    cfg = app.config()
    world = create_sim(cfg, seed=seed)
    expert = make_expert(world, cfg)
    path = Path(tub_path).expanduser() if tub_path else cfg.car_file(cfg.recording.tub)
    duration_s = minutes * 60.0
    metadata = {"source": "autodrive sim record", "track": world.track.name, "seed": world.seed,
                "loop_hz": cfg.drive.loop_hz}

    writer = TubWriter(path, TUB_INPUTS, TUB_TYPES, metadata=metadata,
                       jpeg_quality=cfg.recording.jpeg_quality, queue_size=cfg.recording.queue_size,
                       fsync_interval_s=cfg.recording.fsync_interval_s)
    try:
        with click.progressbar(length=int(duration_s), label="recording", show_eta=True,
                               item_show_func=lambda _: None, file=click.get_text_stream("stderr")) as bar:
            shown = [0]

            def advance(sim_time_s: float) -> None:
                bar.update(int(sim_time_s) - shown[0])
                shown[0] = int(sim_time_s)

            result = record(world, expert, writer, duration_s, queue_size=cfg.recording.queue_size,
                            progress=advance)
    finally:
        writer.close()

    click.echo(f"recorded {writer.count} records ({writer.dropped} dropped) into {path}")
    click.echo(f"{result.sim_time_s:.0f} s simulated in {result.wall_time_s:.1f} s "
               f"({result.speedup:.1f}x real time): {result.laps} laps of {world.track.name}, "
               f"{result.recoveries} recoveries, {result.off_track_events} off-track events")


@command.command(name="evaluate")
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False),
              help="Model file (.tflite or .keras), absolute or relative to the car folder.")
@click.option("--laps", type=click.IntRange(min=1), default=3, show_default=True, help="Laps to drive.")
@click.option("--max-lap-s", "max_lap_time_s", type=click.FloatRange(min=1.0), default=60.0, show_default=True,
              help="Stop when one lap takes longer than this many simulated seconds.")
@click.option("--video", "video_path", type=click.Path(dir_okay=False), default=None,
              help="Write the run as an mp4 video with steering and throttle drawn on it.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed instead of sim.seed.")
@click.option("--reset-after-s", "reset_after_s", type=click.FloatRange(min=0.0), default=2.0, show_default=True,
              help="Put a car that has been off the track this many simulated seconds back on the centre "
                   "line, counted as a reset; 0 never puts it back.")
@common_options
def evaluate_command(app: AppContext, model_path: str, laps: int, max_lap_time_s: float,
                     video_path: str | None, seed: int | None, reset_after_s: float) -> None:
    """Let a trained pilot drive the simulator and report how well it keeps to the lane.

    The pilot steers and sets the throttle (pilot.throttle_scale applies).
    A car off the track for --reset-after-s seconds is put back on the
    centre line and counted, as a person would carry it back.
    """
    from autodrive.parts.pilot import load_pilot
    from autodrive.sim import create_sim
    from autodrive.sim.evaluate import evaluate

    cfg = app.config()
    path = Path(model_path).expanduser()
    if not path.is_absolute() and not path.exists():
        path = cfg.car_file(model_path)
    pilot = load_pilot(path, cfg)
    world = create_sim(cfg, seed=seed)
    scaled = _ScaledPilot(pilot, cfg.pilot.throttle_scale)

    def lap_done(lap: int, time_s: float) -> None:
        click.echo(f"lap {lap} completed at {time_s:.1f} s", err=True)

    result = evaluate(world, scaled, laps, max_lap_time_s=max_lap_time_s,
                      video_path=Path(video_path) if video_path else None, progress=lap_done,
                      reset_after_s=reset_after_s or None)
    click.echo(f"model: {path}")
    click.echo(f"track: {world.track.name} ({world.track.length_m:.1f} m)")
    click.echo(result.summary())
    if video_path:
        click.echo(f"video: {video_path}")


class _ScaledPilot:
    """A pilot whose throttle is multiplied by pilot.throttle_scale, as in local mode on the car."""

    def __init__(self, pilot, throttle_scale: float):
        self.pilot = pilot
        self.throttle_scale = throttle_scale

    def run(self, image):
        angle, throttle = self.pilot.run(image)
        return angle, throttle * self.throttle_scale
