"""Benchmark `autodrive train` on a real tub: pipeline speed, training speed, accuracy, memory.

Measures, for the ``linear`` model at one batch size:

1. pipeline: images/s of the tf.data pipeline alone (read, decode, batch,
   no model), from disk and from the in-memory cache;
2. training speed: training images/s when the model is fed by the full
   pipeline decoding JPEGs from disk every epoch, by the pipeline with its
   in-memory cache, and by NumPy arrays already in memory (the upper bound);
3. accuracy: validation MAE of angle and throttle after training to
   convergence (early stopping), against a constant predictor of the
   training mean, once without augmentation and once per augmentation;
4. peak resident memory of the process.

Usage: PYTHONPATH=. python3 scripts/bench_train.py [--tub PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TUB = REPO.parent / "shared" / "data" / "tubs" / "donkeycar-track-2020"
AUGMENTATIONS = ("brightness", "blur", "flip", "shadow")


def _parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tub", type=Path, default=DEFAULT_TUB, help="tub to train on (default: the shared real tub)")
    parser.add_argument("--batch-size", type=int, default=128,
                        help="records per batch of the pipeline and training-speed runs (default 128)")
    parser.add_argument("--accuracy-batch-size", type=int, default=None,
                        help="records per batch of the accuracy runs (default: training.batch_size)")
    parser.add_argument("--speed-epochs", type=int, default=4,
                        help="epochs per training-speed run; the first is left out as warm-up (default 4)")
    parser.add_argument("--max-epochs", type=int, default=100, help="epoch limit of the accuracy runs (default 100)")
    parser.add_argument("--seeds", type=int, default=2, help="accuracy runs per augmentation setting (default 2)")
    parser.add_argument("--quick", action="store_true", help="one seed, 10 epochs: a smoke test of this script")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    return parser.parse_args()


def _peak_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _settings(examples, batch_size: int, augmentations=None):
    from autodrive.config import default_config
    from autodrive.train.options import Augmentations
    from autodrive.train.pipeline import PipelineSettings

    config = default_config()
    return PipelineSettings(
        width=examples.image_width,
        height=examples.image_height,
        crop_top=config.training.crop_top,
        crop_bottom=config.training.crop_bottom,
        batch_size=batch_size,
        threads=config.training.pipeline_threads,
        seed=config.training.seed,
        augmentations=augmentations or Augmentations(),
    )


def bench_pipeline(examples, settings, passes: int = 3) -> dict[str, float]:
    """Return images/s of the pipeline alone, decoding from disk and reading from the cache."""
    from autodrive.train.pipeline import make_dataset

    results = {}
    for label, cache in (("disk", False), ("cache", True)):
        dataset = make_dataset(examples, settings, training=True, cache=cache)
        for _ in dataset:  # warm-up pass; fills the cache
            pass
        start = time.perf_counter()
        for _ in range(passes):
            for _ in dataset:
                pass
        results[label] = passes * len(examples) / (time.perf_counter() - start)
    return results


def _timed_fit(model, data, epochs: int, count: int, **fit_arguments) -> float:
    """Fit for ``epochs`` and return the median images/s of all epochs after the first."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.durations_s: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.durations_s.append(time.perf_counter() - self._start)

    timer = EpochTimer()
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    model.fit(data, epochs=epochs, verbose=0, callbacks=[timer], **fit_arguments)
    return statistics.median(count / duration for duration in timer.durations_s[1:])


def bench_training_speed(examples, settings, epochs: int) -> dict[str, float]:
    """Return training images/s fed from disk, from the cache and from in-memory arrays."""
    import keras

    from autodrive.train.models import ModelSpec, build_model, losses_and_metrics
    from autodrive.train.pipeline import load_frames, make_dataset

    def compiled():
        model = build_model(ModelSpec("linear", height=settings.cropped_height, width=settings.width))
        losses, metrics = losses_and_metrics("linear")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses, metrics=metrics, jit_compile=False)
        return model

    results = {}
    for label, cache in (("pipeline_disk", False), ("pipeline_cache", True)):
        dataset = make_dataset(examples, settings, training=True, cache=cache)
        results[label] = _timed_fit(compiled(), dataset, epochs, len(examples))

    frames = load_frames(examples, settings)
    labels = {"angle": examples.angles[:, None], "throttle": examples.throttles[:, None]}
    results["arrays"] = _timed_fit(
        compiled(), frames, epochs, len(examples), y=labels, batch_size=settings.batch_size, shuffle=True
    )
    return results


def bench_accuracy(tub: Path, batch_size: int | None, max_epochs: int, seeds: int, models_dir: Path) -> list[dict]:
    """Train ``linear`` to convergence without and with each augmentation; return the figures per run."""
    from autodrive.config import default_config
    from autodrive.train.trainer import plan_training, run_training

    settings = [("none", {})] + [(name, {f"training__augment_{name}": True}) for name in AUGMENTATIONS]
    runs = []
    for label, overrides in settings:
        for seed in range(seeds):
            config = default_config(training__epochs=max_epochs, training__seed=42 + seed, **overrides)
            plan = plan_training(
                config, tubs=[tub], model_type="linear", name=f"bench_{label}_{seed}",
                models_dir=models_dir, batch_size=batch_size, overwrite=True, progress=0,
            )
            start = time.perf_counter()
            sidecar = run_training(plan)
            metrics = sidecar["training"]["metrics"]
            run = {
                "augmentation": label,
                "seed": 42 + seed,
                "epochs": sidecar["training"]["epochs"],
                "batch_size": sidecar["training"]["batch_size"],
                "best_epoch": metrics["best_epoch"],
                "val_angle_mae": metrics["val_angle_mae"],
                "val_throttle_mae": metrics["val_throttle_mae"],
                "baseline_angle_mae": metrics["baseline_angle_mae"],
                "baseline_throttle_mae": metrics["baseline_throttle_mae"],
                "train_images_per_s": metrics.get("train_images_per_s"),
                "seconds": round(time.perf_counter() - start, 1),
            }
            print(json.dumps(run), flush=True)
            runs.append(run)
    return runs


def main() -> None:
    arguments = _parse_arguments()
    if arguments.quick:
        arguments.max_epochs, arguments.seeds, arguments.speed_epochs = 10, 1, 3
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO))

    from autodrive.train.records import collect_examples, find_tubs

    examples = collect_examples(find_tubs([arguments.tub]))
    print(f"tub {arguments.tub}: {len(examples)} records of {examples.image_width}x{examples.image_height} px; "
          f"{os.cpu_count()} CPU cores; batch {arguments.batch_size}", flush=True)

    import tensorflow as tf

    from autodrive.train.pipeline import set_thread_counts

    set_thread_counts(os.cpu_count() or 1)
    tf.keras.utils.set_random_seed(42)
    settings = _settings(examples, arguments.batch_size)

    figures: dict = {"records": len(examples), "batch_size": arguments.batch_size, "cpu_cores": os.cpu_count(),
                     "gpus": len(tf.config.list_physical_devices("GPU"))}
    figures["pipeline_images_per_s"] = bench_pipeline(examples, settings)
    print("pipeline alone, images/s:", json.dumps({k: round(v) for k, v in figures["pipeline_images_per_s"].items()}),
          flush=True)

    figures["training_images_per_s"] = bench_training_speed(examples, settings, arguments.speed_epochs)
    speeds = figures["training_images_per_s"]
    print("training linear, images/s:", json.dumps({k: round(v) for k, v in speeds.items()}), flush=True)
    print(f"  full pipeline from disk is {100 * speeds['pipeline_disk'] / speeds['arrays']:.0f} % "
          f"and cached pipeline {100 * speeds['pipeline_cache'] / speeds['arrays']:.0f} % of the in-memory arrays",
          flush=True)

    import tempfile

    with tempfile.TemporaryDirectory() as models_dir:
        runs = bench_accuracy(arguments.tub, arguments.accuracy_batch_size, arguments.max_epochs, arguments.seeds,
                              Path(models_dir))
    figures["accuracy_runs"] = runs

    print("\naccuracy (validation MAE, mean over seeds; constant training-mean baseline in brackets):")
    for label in ["none", *AUGMENTATIONS]:
        chosen = [run for run in runs if run["augmentation"] == label]
        angle = statistics.mean(run["val_angle_mae"] for run in chosen)
        throttle = statistics.mean(run["val_throttle_mae"] for run in chosen)
        epochs = statistics.mean(run["epochs"] for run in chosen)
        print(f"  {label:<10} angle {angle:.4f} ({chosen[0]['baseline_angle_mae']:.4f})  "
              f"throttle {throttle:.4f} ({chosen[0]['baseline_throttle_mae']:.4f})  epochs {epochs:.0f}")

    figures["peak_rss_mib"] = round(_peak_rss_mib())
    print(f"\npeak resident memory: {figures['peak_rss_mib']} MiB")
    if arguments.json:
        arguments.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
