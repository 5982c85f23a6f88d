"""Compile and fit a model: Adam, early stopping, best-checkpoint saving, progress.

One GPU is used as is, several through ``tf.distribute.MirroredStrategy``,
and mixed precision (float16 compute, float32 outputs) only on a GPU. XLA
stays off (``jit_compile=False``): on a 2-core x86-64 CPU it made the
Donkey-sized model about ten times slower to train.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf

from autodrive.train.models import losses_and_metrics

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """Result of one fit: the per-epoch history, the best epoch and the throughput."""

    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int
    train_images_per_s: list[float] = field(default_factory=list)
    strategy: str = "default"


def choose_strategy(mixed_precision: bool) -> tf.distribute.Strategy:
    """Return the distribution strategy for the GPUs present, and set the precision policy."""
    # NOTE: the GPU branches (mixed precision, MirroredStrategy on GPUs) follow
    # the Keras 3 and TensorFlow 2.21 documentation but have not been run on a
    # GPU; MirroredStrategy itself is tested on two logical CPU devices.
    gpus = tf.config.list_physical_devices("GPU")
    if mixed_precision and gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
        log.info("mixed precision on: float16 compute, float32 outputs")
    else:
        keras.mixed_precision.set_global_policy("float32")
        if mixed_precision:
            log.warning("training.mixed_precision is on but there is no GPU; training in float32")

    if len(gpus) > 1:
        log.info("training on %d GPUs with MirroredStrategy", len(gpus))
        return tf.distribute.MirroredStrategy()
    log.info("training on %s", "1 GPU" if gpus else "the CPU")
    return tf.distribute.get_strategy()


def describe_strategy(strategy: tf.distribute.Strategy) -> str:
    """Return where training runs, in words: "CPU", "1 GPU" or "MirroredStrategy on 2 GPUs"."""
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        devices = strategy.extended.worker_devices
        kind = "GPUs" if all("GPU" in device.upper() for device in devices) else "devices"
        return f"MirroredStrategy on {strategy.num_replicas_in_sync} {kind}"
    return "1 GPU" if tf.config.list_physical_devices("GPU") else "CPU"


class _Throughput(keras.callbacks.Callback):
    """Measures training images per second of each epoch, without the validation pass."""

    def __init__(self, train_count: int):
        super().__init__()
        self.train_count = train_count
        self.images_per_s: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last_batch_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        elapsed_s = getattr(self, "_last_batch_end", time.perf_counter()) - self._start
        self.images_per_s.append(self.train_count / elapsed_s if elapsed_s > 0 else 0.0)


def fit_model(
    build: Callable[[], keras.Model],
    strategy: tf.distribute.Strategy,
    train_dataset: tf.data.Dataset,
    validation_dataset: tf.data.Dataset,
    model_type: str,
    train_count: int,
    checkpoint_path: Path,
    epochs: int,
    learning_rate: float,
    patience: int,
    progress: int | None = None,
) -> tuple[keras.Model, FitResult]:
    """Build, compile and fit a model, saving the best one (lowest val_loss) to ``checkpoint_path``.

    ``progress`` is the Keras verbosity: None shows a progress bar on a
    terminal and one line per epoch otherwise. Returns the model with the
    best epoch's weights, which Keras 3's EarlyStopping restores at the end
    of training whether or not it stopped early.
    """
    with strategy.scope():
        model = build()
        losses, metrics = losses_and_metrics(model_type)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
            loss=losses,
            metrics=metrics,
            jit_compile=False,
        )

    throughput = _Throughput(train_count)
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(str(checkpoint_path), monitor="val_loss", save_best_only=True),
        throughput,
    ]
    if progress is None:
        progress = 1 if sys.stderr.isatty() else 2

    with warnings.catch_warnings():
        # The datasets are shuffled by the pipeline; Keras warns that its own
        # shuffle flag does not apply to them.
        warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
        history = model.fit(
            train_dataset,
            validation_data=validation_dataset,
            epochs=epochs,
            callbacks=callbacks,
            verbose=progress,
        )

    values = {name: [float(value) for value in series] for name, series in history.history.items()}
    losses_by_epoch = values["val_loss"]
    best_epoch = min(range(len(losses_by_epoch)), key=losses_by_epoch.__getitem__) + 1

    result = FitResult(
        history=values,
        epochs_run=len(losses_by_epoch),
        best_epoch=best_epoch,
        train_images_per_s=throughput.images_per_s,
        strategy=describe_strategy(strategy),
    )
    return model, result
