"""Convert a trained Keras model to TFLite and decode its predictions to angle and throttle.

The TFLite file keeps the Keras names in its ``serving_default`` signature:
inputs ``img_in`` (and ``mem_in``), outputs ``angle`` and ``throttle``. The
converter may list outputs in another order, so readers match them by name.
Inputs and outputs stay float32 with every quantization, so the car feeds a
quantized model exactly like a float one.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Iterator

import keras
import numpy as np
import tensorflow as tf

from autodrive.train.models import Bins

log = logging.getLogger(__name__)

QUANTIZATIONS = ("float16", "int8")
REPRESENTATIVE_FRAMES = 200


def convert_to_tflite(
    model: keras.Model,
    path: Path,
    quantize: str | None = None,
    representative: dict[str, np.ndarray] | None = None,
) -> int:
    """Write ``model`` as a TFLite flat buffer to ``path`` and return its size in bytes.

    ``quantize`` is None (float32), "float16" (float16 weights) or "int8"
    (int8 weights and activations calibrated on ``representative``: model
    inputs by name, one row per frame, with float32 kept at the interface).
    """
    converter = tf.lite.TFLiteConverter.from_keras_model(as_float32(model))
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if representative is None:
            raise ValueError("int8 quantization needs representative frames")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: _representative_rows(representative)
    elif quantize is not None:
        raise ValueError(f"unknown quantization {quantize!r}; use one of {', '.join(QUANTIZATIONS)}")

    # The converter exports a SavedModel first: Keras prints its endpoints to
    # stdout and warns that the dict input was passed as a tensor, which is
    # how the SavedModel signature names it. Both go to the debug log.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
        flat_buffer = converter.convert()
    log.debug("TFLite converter output: %s", printed.getvalue())
    path.write_bytes(flat_buffer)
    log.info("wrote %s (%.1f KiB%s)", path, len(flat_buffer) / 1024, f", {quantize}" if quantize else "")
    return len(flat_buffer)


def as_float32(model: keras.Model) -> keras.Model:
    """Return ``model`` itself, or a float32 copy with its weights if it computes in float16.

    A model trained with mixed precision runs its convolutions in float16,
    which TFLite's built-in operators do not accept ("'tf.Conv2D' op is
    neither a custom op nor a flex op"). Its weights are stored in float32,
    so a copy built with the float32 policy takes them unchanged.
    """
    if all(_compute_dtype(layer) in ("float32", None) for layer in model.layers):
        return model
    config = _with_float32_policy(model.get_config())
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    log.info("exporting the mixed-precision model as float32 for TFLite")
    return copy


def _compute_dtype(layer: keras.layers.Layer) -> str | None:
    policy = getattr(layer, "dtype_policy", None)
    return getattr(policy, "compute_dtype", None)


def _with_float32_policy(config):
    """Return a copy of a Keras config with every mixed-precision policy set to float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
            name = config["config"].get("name", "")
            if name.startswith("mixed_"):
                return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _with_float32_policy(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_with_float32_policy(item) for item in config]
    if config in ("mixed_float16", "mixed_bfloat16"):
        return "float32"
    return config


def _representative_rows(inputs: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    count = len(next(iter(inputs.values())))
    for row in range(min(count, REPRESENTATIVE_FRAMES)):
        yield {name: values[row: row + 1] for name, values in inputs.items()}


def decode_outputs(
    outputs: dict[str, np.ndarray],
    model_type: str,
    angle_bins: Bins | None = None,
    throttle_bins: Bins | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (angles, throttles) as 1-D arrays from raw model outputs keyed by name.

    Categorical outputs become the centre of the arg-max bin, as on the car.
    """
    if model_type == "categorical":
        return _bin_values(outputs["angle"], angle_bins), _bin_values(outputs["throttle"], throttle_bins)
    return np.asarray(outputs["angle"]).reshape(-1), np.asarray(outputs["throttle"]).reshape(-1)


def _bin_values(probabilities: np.ndarray, bins: Bins) -> np.ndarray:
    centres = np.linspace(bins.low, bins.high, bins.count, dtype=np.float32)
    return centres[np.argmax(probabilities, axis=-1)]
