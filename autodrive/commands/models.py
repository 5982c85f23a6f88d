"""`autodrive models`: List the trained models of a car."""

from __future__ import annotations

import click

from autodrive.commands._common import common_options


def _format_mae(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


@click.command(name="models")
@common_options
def command(app):
    """List the trained models in CAR/models/ with their type, data and validation error."""
    from autodrive.train.index import read_index

    config = app.config()
    models_dir = config.car_file("models")
    entries = read_index(models_dir) if models_dir.is_dir() else []
    if not entries:
        click.echo(f"no trained models in {models_dir}; train one with 'autodrive train --tub data/'")
        return

    header = f"{'name':<28} {'type':<12} {'created':<26} {'records':>8} {'epochs':>6} {'angle MAE':>9} {'thr. MAE':>9}  tflite"
    click.echo(header)
    for entry in entries:
        records = (entry.get("train_records") or 0) + (entry.get("validation_records") or 0)
        tflite = entry.get("files", {}).get("tflite", "-")
        if tflite != "-" and not (models_dir / tflite).is_file():
            tflite += " (missing)"
        quantize = entry.get("quantize")
        if quantize:
            tflite += f" ({quantize})"
        click.echo(
            f"{entry['name']:<28} {entry['type']:<12} {entry['created']:<26} {records:>8} "
            f"{entry.get('epochs') or '-':>6} {_format_mae(entry.get('val_angle_mae')):>9} "
            f"{_format_mae(entry.get('val_throttle_mae')):>9}  {tflite}"
        )
