"""Keras model builders: ``linear``, ``categorical`` and ``memory``.

All three share the five-convolution trunk of Donkey Car's models (24, 32
and 64 filters of 5x5 with stride 2, then two 64-filter 3x3 with stride 1,
each with ReLU and dropout 0.2, then dense layers of 100 and 50 units), so
their results compare with Donkey's. The image input is named ``img_in`` and
takes float32 RGB in [0, 1] after the crop; the memory model's second input
``mem_in`` takes the previous (angle, throttle) pairs, flattened, newest
last. The output layers are named ``angle`` and ``throttle`` and always
compute in float32, also under mixed precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from autodrive.train.sidecar import IMAGE_INPUT_NAME, MEMORY_INPUT_NAME

DROPOUT_RATE = 0.2
_CONVOLUTIONS = ((24, 5, 2), (32, 5, 2), (64, 5, 2), (64, 3, 1), (64, 3, 1))
_DENSE_UNITS = (100, 50)


@dataclass(frozen=True)
class Bins:
    """Evenly spaced bin centres from ``low`` to ``high``, both included."""

    count: int
    low: float
    high: float

    def encode(self, values: tf.Tensor) -> tf.Tensor:
        """Return one-hot rows of the bin whose centre is nearest to each value."""
        position = (values - self.low) / (self.high - self.low) * (self.count - 1)
        index = tf.cast(tf.clip_by_value(tf.round(position), 0, self.count - 1), tf.int32)
        return tf.one_hot(index, self.count, dtype=tf.float32)

    def as_sidecar(self, name: str) -> dict:
        return {"name": name, "kind": "bins", "bins": self.count, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class ModelSpec:
    """The model to build: its type, cropped input size and type-specific settings."""

    model_type: str
    height: int
    width: int
    memory_length: int = 0
    angle_bins: Bins | None = None
    throttle_bins: Bins | None = None


def build_model(spec: ModelSpec) -> keras.Model:
    """Build an uncompiled model for ``spec``."""
    image = keras.Input(shape=(spec.height, spec.width, 3), name=IMAGE_INPUT_NAME, dtype="float32")
    inputs = {IMAGE_INPUT_NAME: image}

    features = _trunk(image)
    if spec.model_type == "memory":
        memory = keras.Input(shape=(2 * spec.memory_length,), name=MEMORY_INPUT_NAME, dtype="float32")
        inputs[MEMORY_INPUT_NAME] = memory
        features = keras.layers.Concatenate(name="image_and_memory")([features, memory])
    features = _dense_head(features)

    if spec.model_type == "categorical":
        angle = keras.layers.Dense(spec.angle_bins.count, activation="softmax", name="angle", dtype="float32")(features)
        throttle = keras.layers.Dense(
            spec.throttle_bins.count, activation="softmax", name="throttle", dtype="float32"
        )(features)
    elif spec.model_type in ("linear", "memory"):
        angle = keras.layers.Dense(1, name="angle", dtype="float32")(features)
        throttle = keras.layers.Dense(1, name="throttle", dtype="float32")(features)
    else:
        raise ValueError(f"unknown model type {spec.model_type!r}")

    return keras.Model(inputs=inputs, outputs={"angle": angle, "throttle": throttle}, name=spec.model_type)


def _trunk(image):
    features = image
    for number, (filters, kernel, stride) in enumerate(_CONVOLUTIONS, start=1):
        features = keras.layers.Conv2D(
            filters, kernel, strides=stride, activation="relu", name=f"conv{number}"
        )(features)
        features = keras.layers.Dropout(DROPOUT_RATE, name=f"conv{number}_dropout")(features)
    return keras.layers.Flatten(name="flatten")(features)


def _dense_head(features):
    for number, units in enumerate(_DENSE_UNITS, start=1):
        features = keras.layers.Dense(units, activation="relu", name=f"dense{number}")(features)
        features = keras.layers.Dropout(DROPOUT_RATE, name=f"dense{number}_dropout")(features)
    return features


def losses_and_metrics(model_type: str) -> tuple[dict, dict]:
    """Return the Keras losses and metrics of each output for ``model_type``."""
    if model_type == "categorical":
        losses = {"angle": "categorical_crossentropy", "throttle": "categorical_crossentropy"}
        metrics = {"angle": ["categorical_accuracy"], "throttle": ["categorical_accuracy"]}
    else:
        losses = {"angle": "mse", "throttle": "mse"}
        metrics = {"angle": ["mae"], "throttle": ["mae"]}
    return losses, metrics
