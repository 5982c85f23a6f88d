"""`autodrive drive`: run the drive loop: camera, web joystick, pilot, safety stage, motors and recorder."""

from __future__ import annotations

import logging

import click

from autodrive.commands._common import common_options

log = logging.getLogger(__name__)


@click.command(
    name="drive",
    help=(
        "Run the drive loop: camera, web joystick, pilot, safety stage, motors and recorder. "
        "Without a camera or a PCA9685 board it drives the built-in simulator. "
        "Open the printed URL (it carries the access token) on a phone or laptop to drive. "
        "Stops on Ctrl-C, SIGTERM or SIGHUP (a closed terminal) with the motors at neutral."
    ),
)
@click.option("--model", "model", type=click.Path(dir_okay=False), default=None,
              help="Model file (.tflite, .keras, .h5, or its .json sidecar) to drive with; overrides pilot.model.")
@click.option("--no-web", "no_web", is_flag=True,
              help="Run without the web controller; only a pilot in local mode (--set drive.mode=local) moves the car.")
@click.option("--no-record", "no_record", is_flag=True, help="Run without the recorder.")
@common_options
def command(app, model: str | None, no_web: bool, no_record: bool) -> int:
    from autodrive.assemble import build_vehicle

    cfg = app.config()
    vehicle = build_vehicle(cfg, model=model, web=not no_web, record=not no_record)
    report = vehicle.start(rate_hz=cfg.drive.loop_hz, max_loops=cfg.drive.max_loops, handle_signals=True)

    if report.clean:
        click.echo(f"drive stopped: {report.reason} ({report.loops} loops, {report.overruns} overruns)", err=True)
    else:
        click.echo(f"drive failed: {report.reason} ({report.loops} loops)", err=True)
    return report.exit_code
