"""`autodrive sync pull|push`: Copy tubs from the car and models to it."""

from __future__ import annotations

import logging
import sys

import click

from autodrive.commands._common import AppContext, common_options
from autodrive.errors import ConfigError

log = logging.getLogger(__name__)

CAR_HELP = "CAR is user@host:path (rsync over ssh) or a local car folder; it defaults to sync.car."


@click.group(name="sync", help=f"Copy tubs from the car and models to it. {CAR_HELP}")
def command() -> None:
    pass


def _car_and_settings(app: AppContext, car: str | None):
    from autodrive.sync import SshSettings

    config = app.config()
    car = car or config.sync.car
    if not car:
        raise ConfigError(
            "no CAR given and sync.car is not set; pass user@host:path (or a local car folder), "
            "or set sync.car in myconfig.yaml"
        )
    ssh = SshSettings(
        port=config.sync.ssh_port,
        options=tuple(config.sync.ssh_options),
        connect_timeout_s=config.sync.connect_timeout_s,
        batch_mode=not sys.stdin.isatty(),
    )
    return config, car, ssh


def _progress_stream(progress: bool | None):
    from autodrive.sync import default_progress_stream

    if progress is None:
        return default_progress_stream()
    return sys.stderr if progress else None


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


@command.command(name="pull", help=f"Copy the car's tubs into this car folder's tub folder (recording.tub). {CAR_HELP}")
@click.argument("car_location", metavar="CAR", required=False)
@click.option("--dry-run", is_flag=True, help="List the files that would be copied and change nothing.")
@click.option("--progress/--no-progress", default=None, help="Show transfer progress (default: when stderr is a terminal).")
@common_options
def pull_command(app: AppContext, car_location: str | None, dry_run: bool, progress: bool | None) -> None:
    from autodrive.sync import pull

    config, car, ssh = _car_and_settings(app, car_location)
    report = pull(
        car,
        app.car_path,
        config.recording.tub,
        ssh=ssh,
        dry_run=dry_run,
        progress_stream=_progress_stream(progress),
        bandwidth_limit_kbps=config.sync.bandwidth_limit_kbps,
    )

    if dry_run:
        for name in report.files:
            click.echo(f"would copy {name}")
        click.echo(f"dry run: {len(report.files)} files would be copied from {report.source} to {report.destination}")
        return
    click.echo(
        f"pulled {len(report.files)} files ({_megabytes(report.bytes_total)}) from {report.source} to {report.destination}"
    )
    for merge in report.tubs:
        click.echo(
            f"{merge.path}: {len(merge.deleted_indexes)} records marked deleted "
            f"({len(merge.new_car_deletions)} newly deleted on the car)"
        )


@command.command(name="push", help=f"Copy a model (.tflite and .json) into the car's models/ folder. {CAR_HELP}")
@click.argument("car_location", metavar="CAR", required=False)
@click.option("--model", "model", default=None, metavar="NAME",
              help="Model name in this car folder's models/ (default: the newest .tflite model).")
@click.option("--all-files", is_flag=True, help="Also copy the .keras file, which the car needs only to run Keras models.")
@click.option("--dry-run", is_flag=True, help="List the files that would be copied and change nothing.")
@click.option("--progress/--no-progress", default=None, help="Show transfer progress (default: when stderr is a terminal).")
@common_options
def push_command(app: AppContext, car_location: str | None, model: str | None, all_files: bool, dry_run: bool, progress: bool | None) -> None:
    from autodrive.sync import push

    config, car, ssh = _car_and_settings(app, car_location)
    report = push(
        car,
        app.car_path / "models",
        model=model,
        all_files=all_files,
        ssh=ssh,
        dry_run=dry_run,
        progress_stream=_progress_stream(progress),
        bandwidth_limit_kbps=config.sync.bandwidth_limit_kbps,
    )

    verb = "would copy" if dry_run else "copied"
    for name in report.files:
        click.echo(f"{verb} {name}")
    if not report.files:
        click.echo(f"model {report.model} is already up to date in {report.destination}")
    elif not dry_run:
        click.echo(f"pushed model {report.model} ({_megabytes(report.bytes_total)}) to {report.destination}")
