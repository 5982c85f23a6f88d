"""`autodrive train`: Train a model from tubs."""

from __future__ import annotations

import click

from autodrive.commands._common import common_options
from autodrive.train.sidecar import MODEL_TYPES


@click.command(name="train")
@click.option("--tub", "tubs", multiple=True, metavar="PATH",
              help="Tub folder, or a folder of tubs; may be given several times (default: recording.tub of the car).")
@click.option("--type", "model_type", default=None, metavar="TYPE",
              help=f"Model type: one of {', '.join(MODEL_TYPES)} (default: training.type).")
@click.option("--name", default=None, help="Model name; files go to CAR/models/NAME.* (default: pilot_YYYYmmdd_HHMMSS).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Upper limit on epochs; early stopping usually ends sooner (default: training.epochs).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Records per batch (default: training.batch_size).")
@click.option("--quantize", default=None, metavar="float16|int8",
              help="Quantize the .tflite file: float16 weights, or int8 calibrated on training frames "
                   "(default: float32).")
@click.option("--overwrite", is_flag=True, help="Replace the files of an existing model with the same name.")
@common_options
def command(app, tubs, model_type, name, epochs, batch_size, quantize, overwrite):
    """Train a model from tubs and write NAME.keras, NAME.tflite and NAME.json to CAR/models/."""
    from autodrive.train.records import describe_skipped
    from autodrive.train.trainer import plan_training, run_training

    config = app.config()
    plan = plan_training(
        config,
        tubs=tubs or None,
        model_type=model_type,
        name=name,
        epochs=epochs,
        batch_size=batch_size,
        quantize=quantize,
        overwrite=overwrite,
    )
    click.echo(
        f"training {plan.model_type} model {plan.name!r}: {len(plan.train_positions)} training and "
        f"{len(plan.validation_positions)} validation records from {len(plan.examples.tubs)} tub(s); "
        f"skipped: {describe_skipped(plan.examples.skipped)}"
    )

    sidecar = run_training(plan)

    metrics = sidecar["training"]["metrics"]
    click.echo(
        f"best epoch {metrics['best_epoch']} of {sidecar['training']['epochs']}: validation MAE "
        f"angle {metrics['val_angle_mae']:.4f} (constant-mean baseline {metrics['baseline_angle_mae']:.4f}), "
        f"throttle {metrics['val_throttle_mae']:.4f} (baseline {metrics['baseline_throttle_mae']:.4f})"
    )
    for kind, file_name in sidecar["files"].items():
        click.echo(f"  {kind:<12} {plan.models_dir / file_name}")
    click.echo(f"  {'sidecar':<12} {plan.models_dir / (plan.name + '.json')}")
