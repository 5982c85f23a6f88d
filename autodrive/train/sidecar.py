"""The model sidecar ``models/NAME.json``: what the car needs to feed a model exactly as trained.

The trainer writes it next to ``NAME.keras`` and ``NAME.tflite``; the pilot
reads it with :func:`load_sidecar`. This module imports no TensorFlow, so the
car can use it with only LiteRT installed.

Format version 1 (``"autodrive_model": 1``)::

    {"autodrive_model": 1, "name": "mypilot", "type": "linear",
     "created": "2026-12-04T21:00:00+00:00",
     "input": {"width": 160, "height": 120, "crop_top": 0, "crop_bottom": 0,
               "color": "rgb", "scale": 255.0, "dtype": "float32"},
     "image_input": "img_in", "memory_input": null, "memory_length": 0,
     "outputs": {"angle": {"name": "angle", "kind": "value"},
                 "throttle": {"name": "throttle", "kind": "value"}},
     "files": {"keras": "mypilot.keras", "tflite": "mypilot.tflite"},
     "training": {"tubs": [...], "records": {...}, "epochs": 12,
                  "metrics": {...}, "quantize": null}}

``input.width`` and ``input.height`` are the camera frame size before the
crop. The car removes ``crop_top`` and ``crop_bottom`` rows, divides the
pixels by ``scale`` and feeds float32 RGB to the input named
``image_input``. The memory model also takes ``memory_input``: the previous
``memory_length`` (angle, throttle) pairs, flattened, newest last. Training
filled the pairs before a tub's first record with zeros (a car standing
still), so the car starts from zeros too. Outputs are matched by name, never
by position. An output of kind ``bins`` is a softmax
over ``bins`` evenly spaced bin centres from ``low`` to ``high``, and its value
is the centre of the arg-max bin (see :func:`bin_centres`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from autodrive.errors import AutodriveError

SIDECAR_VERSION = 1
MODEL_TYPES = ("linear", "categorical", "memory")
OUTPUT_KINDS = ("value", "bins")
COLOR_ORDERS = ("rgb", "bgr")
IMAGE_INPUT_NAME = "img_in"
MEMORY_INPUT_NAME = "mem_in"
OUTPUT_NAMES = ("angle", "throttle")


class SidecarError(AutodriveError, ValueError):
    """A model sidecar JSON file is missing, unreadable or not in the expected format."""


def sidecar_path(model_path: str | Path) -> Path:
    """Return the sidecar path of a model file: ``models/NAME.tflite`` -> ``models/NAME.json``."""
    return Path(model_path).with_suffix(".json")


def bin_centres(low: float, high: float, bins: int) -> list[float]:
    """Return ``bins`` evenly spaced bin centres from ``low`` to ``high``, both included."""
    step = (high - low) / (bins - 1)
    return [low + step * index for index in range(bins)]


def load_sidecar(path: str | Path) -> dict[str, Any]:
    """Read and validate a model sidecar JSON file, returning it as a dict.

    ``path`` may be the sidecar itself or the model file beside it
    (``NAME.tflite`` or ``NAME.keras``). Raises SidecarError naming the file,
    the field and what to do when the file is missing, is not JSON, or does
    not follow format version 1.
    """
    path = Path(path)
    if path.suffix != ".json":
        path = sidecar_path(path)

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SidecarError(
            f"model sidecar {path} not found; train the model with 'autodrive train' "
            f"or copy its .json file next to the model"
        ) from None
    except OSError as error:
        raise SidecarError(f"cannot read model sidecar {path}: {error.strerror}") from None

    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SidecarError(
            f"model sidecar {path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            f"restore it from the training machine or train the model again"
        ) from None

    validate_sidecar(data, source=str(path))
    return data


def validate_sidecar(data: Any, source: str = "model sidecar") -> None:
    """Raise SidecarError if ``data`` is not a valid version 1 sidecar; ``source`` names it in messages."""
    check = _Checker(source)
    check.that(isinstance(data, dict), "", "must be a JSON object")

    version = data.get("autodrive_model")
    check.that(version is not None, "autodrive_model", "is missing, so this is not an autodrive model sidecar")
    check.that(isinstance(version, int) and not isinstance(version, bool), "autodrive_model",
               f"must be a whole number, got {version!r}")
    if version > SIDECAR_VERSION:
        raise SidecarError(
            f"{source}: autodrive_model = {version} was written by a newer autodrive "
            f"(this one reads version {SIDECAR_VERSION}); upgrade autodrive on this machine"
        )
    check.that(version == SIDECAR_VERSION, "autodrive_model", f"must be {SIDECAR_VERSION}, got {version!r}")

    check.text(data, "name")
    check.that(data.get("type") in MODEL_TYPES, "type",
               f"must be one of {', '.join(MODEL_TYPES)}, got {data.get('type')!r}")
    check.text(data, "created")

    image = check.section(data, "input")
    check.integer(image, "width", "input.width", low=1)
    height = check.integer(image, "height", "input.height", low=1)
    crop_top = check.integer(image, "crop_top", "input.crop_top", low=0)
    crop_bottom = check.integer(image, "crop_bottom", "input.crop_bottom", low=0)
    check.that(crop_top + crop_bottom < height, "input.crop_top",
               f"crop_top + crop_bottom = {crop_top + crop_bottom} px leaves no rows of the {height} px frame")
    check.that(image.get("color") in COLOR_ORDERS, "input.color",
               f"must be one of {', '.join(COLOR_ORDERS)}, got {image.get('color')!r}")
    scale = check.number(image, "scale", "input.scale")
    check.that(scale > 0, "input.scale", f"must be above 0, got {scale!r}")
    check.that(image.get("dtype") == "float32", "input.dtype", f"must be float32, got {image.get('dtype')!r}")

    check.text(data, "image_input")
    memory_length = check.integer(data, "memory_length", "memory_length", low=0)
    memory_input = data.get("memory_input")
    if data["type"] == "memory":
        check.that(isinstance(memory_input, str) and memory_input != "", "memory_input",
                   f"must name the memory input of a memory model, got {memory_input!r}")
        check.that(memory_length >= 1, "memory_length",
                   f"must be at least 1 for a memory model, got {memory_length}")
    else:
        check.that(memory_input is None, "memory_input",
                   f"must be null for a {data['type']} model, got {memory_input!r}")

    outputs = check.section(data, "outputs")
    for output_name in OUTPUT_NAMES:
        _check_output(check, outputs, output_name)

    files = check.section(data, "files")
    check.text(files, "keras", "files.keras")
    check.text(files, "tflite", "files.tflite")
    check.section(data, "training")


def _check_output(check: "_Checker", outputs: dict, output_name: str) -> None:
    field = f"outputs.{output_name}"
    check.that(isinstance(outputs.get(output_name), dict), field, "is missing or not a JSON object")
    output = outputs[output_name]
    check.text(output, "name", f"{field}.name")
    kind = output.get("kind")
    check.that(kind in OUTPUT_KINDS, f"{field}.kind", f"must be one of {', '.join(OUTPUT_KINDS)}, got {kind!r}")
    if kind == "bins":
        check.integer(output, "bins", f"{field}.bins", low=2)
        low = check.number(output, "low", f"{field}.low")
        high = check.number(output, "high", f"{field}.high")
        check.that(low < high, f"{field}.low", f"must be below high ({high}), got {low}")


class _Checker:
    """Validator that raises SidecarError naming the source file and the dotted field."""

    def __init__(self, source: str):
        self.source = source

    def that(self, condition: bool, field: str, problem: str) -> None:
        if not condition:
            where = f"{self.source}: {field}" if field else self.source
            raise SidecarError(f"{where} {problem}; train the model again with 'autodrive train'")

    def section(self, data: dict, key: str) -> dict:
        self.that(isinstance(data.get(key), dict), key, "is missing or not a JSON object")
        return data[key]

    def text(self, data: dict, key: str, field: str | None = None) -> str:
        value = data.get(key)
        self.that(isinstance(value, str) and value != "", field or key, f"must be non-empty text, got {value!r}")
        return value

    def integer(self, data: dict, key: str, field: str, low: int) -> int:
        value = data.get(key)
        is_integer = isinstance(value, int) and not isinstance(value, bool)
        self.that(is_integer and value >= low, field, f"must be a whole number of at least {low}, got {value!r}")
        return value

    def number(self, data: dict, key: str, field: str) -> float:
        value = data.get(key)
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        self.that(is_number and math.isfinite(value), field, f"must be a finite number, got {value!r}")
        return float(value)
