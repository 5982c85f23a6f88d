"""Train a model from tubs: check the inputs, fit, export, and write the sidecar and report.

:func:`plan_training` does every input check without TensorFlow, so a bad
request fails in a second with one line saying what to do.
:func:`run_training` then imports TensorFlow, fits the model and writes
``NAME.keras``, ``NAME.tflite``, ``NAME.json``, two PNG plots and
``models/index.json``.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from autodrive.config import Config
from autodrive.errors import ConfigError
from autodrive.train.options import Augmentations
from autodrive.train.records import (
    Examples,
    TrainingDataError,
    collect_examples,
    describe_skipped,
    find_tubs,
)
from autodrive.train.sidecar import (
    IMAGE_INPUT_NAME,
    MEMORY_INPUT_NAME,
    MODEL_TYPES,
    SIDECAR_VERSION,
    validate_sidecar,
)
from autodrive.train.split import block_split

log = logging.getLogger(__name__)

QUANTIZATIONS = ("float16", "int8")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MIN_BIN_SPAN = 0.2  # smallest throttle bin range, for tubs recorded at one throttle


def default_model_name(now: datetime | None = None) -> str:
    """Return a model name from the local time, for example ``pilot_20261204_210000``."""
    return (now or datetime.now()).strftime("pilot_%Y%m%d_%H%M%S")


@dataclass
class TrainPlan:
    """A checked training request: the examples, their split and every setting."""

    config: Config
    name: str
    model_type: str
    models_dir: Path
    examples: Examples
    train_positions: np.ndarray
    validation_positions: np.ndarray
    batch_size: int
    epochs: int
    quantize: str | None
    throttle_range: tuple[float, float] | None
    augmentations: Augmentations
    progress: int | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def train_examples(self) -> Examples:
        return self.examples.subset(self.train_positions)

    @property
    def validation_examples(self) -> Examples:
        return self.examples.subset(self.validation_positions)


def plan_training(
    config: Config,
    tubs: Iterable[str | Path] | None = None,
    model_type: str | None = None,
    name: str | None = None,
    models_dir: Path | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    quantize: str | None = None,
    overwrite: bool = False,
    progress: int | None = None,
) -> TrainPlan:
    """Check a training request and read its tubs, without TensorFlow.

    Arguments left as None come from ``config``: the tub is
    ``recording.tub``, the models go to ``CAR/models`` and the rest is in the
    ``training`` section. Raises ConfigError for an invalid option and
    TrainingDataError when the tubs cannot produce a model.
    """
    settings = config.training
    model_type = model_type or settings.type
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"unknown model type {model_type!r}; use --type with one of {', '.join(MODEL_TYPES)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization {quantize!r}; use --quantize with one of {', '.join(QUANTIZATIONS)}")
    batch_size = batch_size or settings.batch_size
    epochs = epochs or settings.epochs
    if batch_size < 1 or epochs < 1:
        raise ConfigError(f"--batch-size ({batch_size}) and --epochs ({epochs}) must be at least 1")

    name = name or default_model_name()
    if not _MODEL_NAME.match(name):
        raise ConfigError(
            f"invalid model name {name!r}; use letters, digits, '_', '-' and '.', starting with a letter or digit"
        )
    models_dir = Path(models_dir) if models_dir is not None else config.car_file("models")
    files = {
        "keras": f"{name}.keras",
        "tflite": f"{name}.tflite",
        "curves": f"{name}_curves.png",
        "predictions": f"{name}_predictions.png",
    }
    existing = [file for file in [*files.values(), f"{name}.json"] if (models_dir / file).exists()]
    if existing and not overwrite:
        raise TrainingDataError(
            f"model {name!r} already exists in {models_dir} ({', '.join(existing)}); "
            f"choose another --name or pass --overwrite"
        )

    tub_paths = find_tubs(list(tubs) if tubs else [config.car_file(config.recording.tub)])
    memory_length = settings.memory_length if model_type == "memory" else 0
    examples = collect_examples(tub_paths, memory_length=memory_length)
    if examples.skipped:
        log.warning("skipped records: %s", describe_skipped(examples.skipped))

    if len(examples) < batch_size:
        raise TrainingDataError(
            f"only {len(examples)} usable records in {', '.join(examples.tubs)}, fewer than one batch of "
            f"{batch_size}; record more data or pass a smaller --batch-size"
        )

    train_positions, validation_positions = block_split(
        examples.tub_ids, settings.split_block, settings.validation_fraction, settings.seed
    )
    log.info(
        "%d usable records from %d tub(s): %d for training, %d for validation (blocks of %d records)",
        len(examples), len(tub_paths), len(train_positions), len(validation_positions), settings.split_block,
    )

    return TrainPlan(
        config=config,
        name=name,
        model_type=model_type,
        models_dir=models_dir,
        examples=examples,
        train_positions=train_positions,
        validation_positions=validation_positions,
        batch_size=batch_size,
        epochs=epochs,
        quantize=quantize,
        throttle_range=_throttle_range(config, examples) if model_type == "categorical" else None,
        augmentations=Augmentations(
            brightness=settings.augment_brightness,
            blur=settings.augment_blur,
            flip=settings.augment_flip,
            shadow=settings.augment_shadow,
        ),
        progress=progress,
        files=files,
    )


def _throttle_range(config: Config, examples: Examples) -> tuple[float, float]:
    """Return the (low, high) throttle bin centres from the config, or else from the data.

    The range includes reverse when the tubs hold reverse throttle. A range
    narrower than _MIN_BIN_SPAN (a tub recorded at one throttle) is widened
    around its middle so that the bins stay distinct.
    """
    settings = config.training
    low = settings.throttle_low if settings.throttle_low is not None else float(examples.throttles.min())
    high = settings.throttle_high if settings.throttle_high is not None else float(examples.throttles.max())
    if low >= high and (settings.throttle_low is not None and settings.throttle_high is not None):
        raise ConfigError(
            f"training.throttle_low ({low}) must be below training.throttle_high ({high}); "
            f"fix them or set both to null to use the recorded range"
        )
    if high - low < _MIN_BIN_SPAN:
        middle = (low + high) / 2
        low = max(-1.0, middle - _MIN_BIN_SPAN / 2)
        high = min(1.0, middle + _MIN_BIN_SPAN / 2)
    return round(low, 6), round(high, 6)


def run_training(plan: TrainPlan) -> dict[str, Any]:
    """Fit the planned model and write its files; return the sidecar that was written."""
    # TensorFlow's C++ start-up notes (oneDNN, CPU features) are not errors.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    from autodrive.errors import require

    require("tensorflow", extra="train")
    import keras

    from autodrive.train import export, fit, pipeline, plots
    from autodrive.train.models import Bins, ModelSpec, build_model

    settings = plan.config.training
    pipeline.set_thread_counts(os.cpu_count() or 1)
    keras.utils.set_random_seed(settings.seed)
    strategy = fit.choose_strategy(settings.mixed_precision)

    angle_bins = throttle_bins = None
    if plan.model_type == "categorical":
        angle_bins = Bins(settings.angle_bins, -1.0, 1.0)
        throttle_bins = Bins(settings.throttle_bins, *plan.throttle_range)

    camera = plan.config.camera
    pipeline_settings = pipeline.PipelineSettings(
        width=camera.width,
        height=camera.height,
        crop_top=settings.crop_top,
        crop_bottom=settings.crop_bottom,
        batch_size=plan.batch_size,
        threads=settings.pipeline_threads,
        cache_budget_mb=settings.cache_budget_mb,
        seed=settings.seed,
        model_type=plan.model_type,
        angle_bins=angle_bins,
        throttle_bins=throttle_bins,
        augmentations=plan.augmentations,
    )
    model_spec = ModelSpec(
        model_type=plan.model_type,
        height=pipeline_settings.cropped_height,
        width=pipeline_settings.width,
        memory_length=settings.memory_length if plan.model_type == "memory" else 0,
        angle_bins=angle_bins,
        throttle_bins=throttle_bins,
    )

    train_examples, validation_examples = plan.train_examples, plan.validation_examples
    cache = pipeline.cache_fits(len(plan.examples), pipeline_settings)
    log.info(
        "decoded frames %s in memory (%.0f MiB, budget %.0f MiB)",
        "cached" if cache else "not cached",
        len(plan.examples) * pipeline_settings.frame_bytes() / 2**20, settings.cache_budget_mb,
    )
    if plan.augmentations.any:
        log.info("augmentations: %s", ", ".join(plan.augmentations.names()))
    train_dataset = pipeline.make_dataset(train_examples, pipeline_settings, training=True, cache=cache)
    validation_dataset = pipeline.make_dataset(validation_examples, pipeline_settings, training=False, cache=cache)

    plan.models_dir.mkdir(parents=True, exist_ok=True)
    keras_path = plan.models_dir / plan.files["keras"]
    model, result = fit.fit_model(
        build=lambda: build_model(model_spec),
        strategy=strategy,
        train_dataset=train_dataset,
        validation_dataset=validation_dataset,
        model_type=plan.model_type,
        train_count=len(train_examples),
        checkpoint_path=keras_path,
        epochs=plan.epochs,
        learning_rate=settings.learning_rate,
        patience=settings.early_stop_patience,
        progress=plan.progress,
    )
    # The checkpoint already contains the best epoch. Saving again also covers
    # a run whose only epoch had a non-finite validation loss.
    model.save(keras_path)

    raw = model.predict(validation_dataset, verbose=0)
    predicted_angles, predicted_throttles = export.decode_outputs(raw, plan.model_type, angle_bins, throttle_bins)
    metrics = _metrics(plan, result, predicted_angles, predicted_throttles)
    log.info(
        "validation MAE: angle %.4f (constant-mean baseline %.4f), throttle %.4f (baseline %.4f)",
        metrics["val_angle_mae"], metrics["baseline_angle_mae"],
        metrics["val_throttle_mae"], metrics["baseline_throttle_mae"],
    )

    representative = None
    if plan.quantize == "int8":
        representative = pipeline.load_frames(train_examples, pipeline_settings, limit=export.REPRESENTATIVE_FRAMES)
    export.convert_to_tflite(model, plan.models_dir / plan.files["tflite"], plan.quantize, representative)

    title = f"{plan.name} ({plan.model_type})"
    plots.plot_history(result.history, result.best_epoch, title, plan.models_dir / plan.files["curves"])
    plots.plot_predictions(
        {"angle": validation_examples.angles, "throttle": validation_examples.throttles},
        {"angle": predicted_angles, "throttle": predicted_throttles},
        title,
        plan.models_dir / plan.files["predictions"],
    )

    sidecar = _sidecar(plan, result, metrics, model_spec, angle_bins, throttle_bins)
    _write_json(plan.models_dir / f"{plan.name}.json", sidecar)
    from autodrive.train.index import write_index

    write_index(plan.models_dir)
    return sidecar


def _metrics(plan: TrainPlan, result, predicted_angles: np.ndarray, predicted_throttles: np.ndarray) -> dict:
    """Return the validation MAE of the model and of a constant training-mean predictor."""
    train_examples, validation_examples = plan.train_examples, plan.validation_examples
    best = result.best_epoch - 1
    metrics = {
        "val_angle_mae": float(np.mean(np.abs(predicted_angles - validation_examples.angles))),
        "val_throttle_mae": float(np.mean(np.abs(predicted_throttles - validation_examples.throttles))),
        "baseline_angle_mae": float(np.mean(np.abs(train_examples.angles.mean() - validation_examples.angles))),
        "baseline_throttle_mae": float(
            np.mean(np.abs(train_examples.throttles.mean() - validation_examples.throttles))
        ),
        "val_loss": result.history["val_loss"][best],
        "loss": result.history["loss"][best],
        "best_epoch": result.best_epoch,
    }
    if result.train_images_per_s:
        metrics["train_images_per_s"] = round(float(np.median(result.train_images_per_s)), 1)
    return {key: round(value, 6) if isinstance(value, float) else value for key, value in metrics.items()}


def _sidecar(plan: TrainPlan, result, metrics: dict, model_spec, angle_bins, throttle_bins) -> dict[str, Any]:
    settings = plan.config.training
    camera = plan.config.camera
    if plan.model_type == "categorical":
        outputs = {"angle": angle_bins.as_sidecar("angle"), "throttle": throttle_bins.as_sidecar("throttle")}
    else:
        outputs = {"angle": {"name": "angle", "kind": "value"}, "throttle": {"name": "throttle", "kind": "value"}}
    skipped = collections.Counter(plan.examples.skipped)

    sidecar = {
        "autodrive_model": SIDECAR_VERSION,
        "name": plan.name,
        "type": plan.model_type,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": {
            "width": camera.width,
            "height": camera.height,
            "crop_top": settings.crop_top,
            "crop_bottom": settings.crop_bottom,
            "color": "rgb",
            "scale": 255.0,
            "dtype": "float32",
        },
        "image_input": IMAGE_INPUT_NAME,
        "memory_input": MEMORY_INPUT_NAME if plan.model_type == "memory" else None,
        "memory_length": model_spec.memory_length,
        "outputs": outputs,
        "files": dict(plan.files),
        "training": {
            "tubs": [str(Path(tub).resolve()) for tub in plan.examples.tubs],
            "records": {
                "train": int(len(plan.train_positions)),
                "validation": int(len(plan.validation_positions)),
                "skipped": dict(skipped.most_common()),
            },
            "epochs": result.epochs_run,
            "batch_size": plan.batch_size,
            "learning_rate": settings.learning_rate,
            "split_block": settings.split_block,
            "seed": settings.seed,
            "augmentations": plan.augmentations.names(),
            "strategy": result.strategy,
            "metrics": metrics,
            "quantize": plan.quantize,
        },
    }
    validate_sidecar(sidecar, source=f"sidecar of {plan.name}")
    return sidecar


def _write_json(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def train(config: Config, **options: Any) -> dict[str, Any]:
    """Check the request, train and write every output; return the sidecar.

    ``options`` are those of :func:`plan_training`.
    """
    return run_training(plan_training(config, **options))
