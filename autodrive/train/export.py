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
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
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
