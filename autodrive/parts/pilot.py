"""The pilot: a trained model that turns camera frames into angle and throttle.

``load_pilot(path, cfg)`` loads ``NAME.tflite`` through LiteRT (falling back to
``tf.lite`` where only TensorFlow is installed) or ``NAME.keras``/``NAME.h5``
through Keras, together with the sidecar ``NAME.json`` that describes how frames
were fed to the model in training (size, crop, colour order, scale, dtype) and
what its outputs are called. Outputs are matched by name, never by position,
because the TFLite converter may list them in another order than Keras.

Models from Donkey Car, which have no sidecar, load when ``pilot.donkey_type``
names their type (``linear`` or ``categorical``).

``PilotPart`` runs a loaded pilot in the drive loop, inline or on its own
thread on the newest frame, and can swap in a new model file while driving.

The TFLite path imports neither TensorFlow nor Keras: on a Raspberry Pi that
import costs seconds and hundreds of MB.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from autodrive.errors import AutodriveError, MissingDependencyError

log = logging.getLogger(__name__)

SIDECAR_VERSION = 1
MODEL_SUFFIXES = (".tflite", ".keras", ".h5")
DONKEY_TYPES = ("linear", "categorical")

# Donkey Car's default categorical bins: 15 angle classes over -1..1 and 20
# throttle classes over 0..1.
DONKEY_ANGLE_RANGE = (-1.0, 1.0)
DONKEY_THROTTLE_RANGE = (0.0, 1.0)


class ModelError(AutodriveError, ValueError):
    """A model file or its sidecar is missing, broken, or does not fit the car."""


# -- the sidecar ------------------------------------------------------------------


@dataclass(frozen=True)
class OutputSpec:
    """Decoding rule of one model output: a single value, or the centre of the arg-max bin."""

    name: str
    kind: str = "value"  # "value" or "bins"
    bins: int = 0
    low: float = -1.0
    high: float = 1.0
    position: int | None = None  # Keras output position, used only when a TFLite file lost the names

    def decode(self, array: np.ndarray) -> float:
        flat = np.asarray(array, dtype=np.float32).reshape(-1)
        if self.kind == "bins":
            centres = np.linspace(self.low, self.high, flat.size)
            return float(centres[int(np.argmax(flat))])
        return float(flat[0])


@dataclass(frozen=True)
class ModelSpec:
    """Input format and output names of a model, read from its sidecar."""

    name: str
    type: str
    width: int
    height: int
    crop_top: int = 0
    crop_bottom: int = 0
    color: str = "rgb"
    scale: float = 255.0
    dtype: str = "float32"
    image_input: str = "img_in"
    memory_input: str | None = None
    memory_length: int = 0
    outputs: dict[str, OutputSpec] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def network_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the tensor fed to the network, after the crop."""
        channels = 1 if self.color in ("gray", "grey") else 3
        return self.height - self.crop_top - self.crop_bottom, self.width, channels


def sidecar_path(model_path: Path) -> Path:
    """Return ``NAME.json`` beside ``NAME.tflite`` / ``NAME.keras`` / ``NAME.h5``."""
    return model_path.with_suffix(".json")


def read_sidecar(path: Path) -> ModelSpec:
    """Read and check a sidecar JSON file into a ModelSpec; raises an AutodriveError naming the problem."""
    # autodrive.train.sidecar imports no TensorFlow, so the TFLite path stays light.
    from autodrive.train.sidecar import load_sidecar

    return spec_from_sidecar(load_sidecar(path), str(path))


def spec_from_sidecar(data: Any, source: str) -> ModelSpec:
    """Build a ModelSpec from the sidecar's parsed JSON."""
    if not isinstance(data, dict) or "autodrive_model" not in data:
        raise ModelError(f"{source} is not an autodrive model sidecar (no 'autodrive_model' key)")
    if data["autodrive_model"] != SIDECAR_VERSION:
        raise ModelError(
            f"{source} has sidecar version {data['autodrive_model']!r}; this autodrive reads version "
            f"{SIDECAR_VERSION}; update autodrive or export the model again"
        )
    try:
        image = data["input"]
        outputs = {}
        for role in ("angle", "throttle"):
            entry = data["outputs"][role]
            outputs[role] = OutputSpec(
                name=str(entry["name"]),
                kind=str(entry.get("kind", "value")),
                bins=int(entry.get("bins", 0) or 0),
                low=float(entry.get("low", -1.0)),
                high=float(entry.get("high", 1.0)),
            )
        spec = ModelSpec(
            name=str(data.get("name", "")),
            type=str(data.get("type", "linear")),
            width=int(image["width"]),
            height=int(image["height"]),
            crop_top=int(image.get("crop_top", 0)),
            crop_bottom=int(image.get("crop_bottom", 0)),
            color=str(image.get("color", "rgb")).lower(),
            scale=float(image.get("scale", 255.0)),
            dtype=str(image.get("dtype", "float32")),
            image_input=str(data.get("image_input") or "img_in"),
            memory_input=data.get("memory_input") or None,
            memory_length=int(data.get("memory_length") or 0),
            outputs=outputs,
            files=dict(data.get("files") or {}),
            source=source,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{source} is missing or has an invalid field ({error!r}); export the model again") from None

    if spec.color not in ("rgb", "bgr", "gray", "grey"):
        raise ModelError(f"{source}: input.color {spec.color!r} is not one of rgb, bgr, gray")
    if spec.network_shape[0] <= 0:
        raise ModelError(f"{source}: crop_top + crop_bottom ({spec.crop_top + spec.crop_bottom}) "
                         f"leaves no rows of the {spec.height}-row frame")
    for role, output in spec.outputs.items():
        if output.kind not in ("value", "bins"):
            raise ModelError(f"{source}: outputs.{role}.kind {output.kind!r} is not one of value, bins")
    return spec


def donkey_spec(donkey_type: str, input_shape: tuple[int, ...], source: str) -> ModelSpec:
    """Describe a Donkey Car model of ``donkey_type``, whose image input has ``input_shape`` (H, W, C)."""
    if donkey_type not in DONKEY_TYPES:
        raise ModelError(f"pilot.donkey_type {donkey_type!r} is not one of {', '.join(DONKEY_TYPES)}")
    height, width = int(input_shape[0]), int(input_shape[1])
    if donkey_type == "linear":
        outputs = {
            "angle": OutputSpec("n_outputs0", position=0),
            "throttle": OutputSpec("n_outputs1", position=1),
        }
    else:
        outputs = {
            # bins=0: the count is read from the model, since Donkey lets users change it.
            "angle": OutputSpec("angle_out", "bins", 0, *DONKEY_ANGLE_RANGE, position=0),
            "throttle": OutputSpec("throttle_out", "bins", 0, *DONKEY_THROTTLE_RANGE, position=1),
        }
    return ModelSpec(name=Path(source).stem, type=donkey_type, width=width, height=height,
                     outputs=outputs, source=f"{source} (Donkey Car {donkey_type} model)")


# -- preprocessing ----------------------------------------------------------------


def prepare_frame(image: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Turn one RGB uint8 H x W x 3 frame into the batch of one the network was trained on."""
    if image.shape[0] != spec.height or image.shape[1] != spec.width:
        raise ModelError(
            f"frame is {image.shape[1]}x{image.shape[0]} px but model {spec.name or spec.source} expects "
            f"{spec.width}x{spec.height} px"
        )
    rows = image[spec.crop_top: spec.height - spec.crop_bottom]

    if spec.color == "bgr":
        rows = rows[..., ::-1]
    elif spec.color in ("gray", "grey"):
        # ITU-R BT.601 luma, as OpenCV's RGB2GRAY computes it.
        rows = (rows.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]

    if spec.dtype == "uint8":
        batch = np.ascontiguousarray(rows, dtype=np.uint8)
    else:
        batch = np.asarray(rows, dtype=np.float32) / np.float32(spec.scale)
    return batch[None, ...]


# -- backends -----------------------------------------------------------------------


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        import tensorflow as tf
    except ImportError:
        raise MissingDependencyError(
            "running a .tflite model needs ai-edge-litert (or TensorFlow); "
            "install it with: pip install 'autodrive[pi]'"
        ) from None
    return tf.lite.Interpreter


class TFLiteModel:
    """A .tflite model run through its signature, with inputs and outputs addressed by name."""

    backend = "tflite"

    def __init__(self, path: Path, num_threads: int | None = None):
        interpreter_class = _interpreter_class()
        try:
            # Read into memory rather than pass the path: the interpreter would
            # memory-map the file, and copying a new model over it while driving
            # (cp truncates in place) would then crash the process with SIGBUS.
            content = path.read_bytes()
            self.interpreter = interpreter_class(model_content=content, num_threads=num_threads)
        except OSError as error:
            raise ModelError(f"cannot read the TFLite model {path}: {error.strerror}") from None
        except (ValueError, RuntimeError) as error:
            raise ModelError(f"cannot load the TFLite model {path}: {error}") from None

        signatures = self.interpreter.get_signature_list()
        if not signatures:
            raise ModelError(f"TFLite model {path} has no signature, so its outputs cannot be found by name; "
                             "convert it again with tf.lite.TFLiteConverter.from_keras_model")
        key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
        self.runner = self.interpreter.get_signature_runner(key)
        self.input_details = self.runner.get_input_details()
        self.output_details = self.runner.get_output_details()
        self.output_names = list(self.output_details)

    def input_shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(size) for size in self.input_details[name]["shape"][1:])

    def has_input(self, name: str) -> bool:
        return name in self.input_details

    def output_size(self, name: str) -> int:
        return int(np.prod(self.output_details[name]["shape"][1:]))

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {}
        for name, array in inputs.items():
            detail = self.input_details[name]
            feed[name] = _quantize(array, detail)
        results = self.runner(**feed)
        return {name: _dequantize(value, self.output_details[name]) for name, value in results.items()}


def _quantize(array: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = detail["dtype"]
    if array.dtype == dtype:
        return array
    scale, zero_point = detail["quantization"]
    if np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        quantized = np.round(array / scale + zero_point)
        return np.clip(quantized, info.min, info.max).astype(dtype)
    return array.astype(dtype)


def _dequantize(array: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if np.issubdtype(array.dtype, np.integer) and scale:
        return (array.astype(np.float32) - zero_point) * scale
    return array


class KerasModel:
    """A .keras or .h5 model run through Keras, with outputs addressed by name."""

    backend = "keras"

    def __init__(self, path: Path):
        keras = _import_keras()
        try:
            self.model = keras.models.load_model(str(path), compile=False)
        except (ValueError, OSError, TypeError) as error:
            raise ModelError(f"cannot load the Keras model {path}: {error}") from None
        # Keras 3 names each input tensor after its Input layer ("img_in").
        self.input_names = [tensor.name.split(":")[0] for tensor in self.model.inputs]
        self.output_names = list(self.model.output_names)

    def input_shape(self, name: str) -> tuple[int, ...]:
        index = self.input_names.index(name)
        return tuple(int(size) for size in self.model.inputs[index].shape[1:])

    def has_input(self, name: str) -> bool:
        return name in self.input_names

    def output_size(self, name: str) -> int:
        outputs = self.model.outputs
        if isinstance(outputs, dict):
            tensor = outputs[name]
        else:
            tensor = list(outputs)[self.output_names.index(name)]
        return int(np.prod(tensor.shape[1:]))

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Feed the inputs in the structure the model was built with (a dict,
        # a list or one tensor), which Keras 3 otherwise warns about each call.
        structure = self.model.input
        if isinstance(structure, dict):
            feed: Any = {name: inputs[name] for name in structure}
        elif isinstance(structure, (list, tuple)):
            feed = [inputs[name] for name in self.input_names]
        else:
            feed = inputs[self.input_names[0]]
        results = self.model(feed, training=False)
        if isinstance(results, dict):
            return {name: np.asarray(value) for name, value in results.items()}
        if not isinstance(results, (list, tuple)):
            results = [results]
        return {name: np.asarray(value) for name, value in zip(self.output_names, results)}


def _import_keras() -> Any:
    try:
        import keras
    except ImportError:
        raise MissingDependencyError(
            "running a .keras or .h5 model needs Keras (TensorFlow); install it with: pip install 'autodrive[train]', "
            "or use the model's .tflite file"
        ) from None
    return keras


# -- the loaded pilot ------------------------------------------------------------


class Pilot:
    """One loaded model with its sidecar: ``run(image)`` returns (angle, throttle).

    ``image`` is an RGB uint8 H x W x 3 frame of the size in the sidecar. For
    the memory model, the previous ``memory_length`` (angle, throttle) outputs
    of this pilot are fed back, newest last, starting from zeros.
    """

    def __init__(self, path: Path, model: Any, spec: ModelSpec):
        self.path = path
        self.model = model
        self.spec = spec
        self.backend = model.backend
        self.output_keys = {role: _find_output(model, output, spec, path) for role, output in spec.outputs.items()}
        self.memory: collections.deque[tuple[float, float]] | None = None
        if spec.memory_input:
            self.memory = collections.deque([(0.0, 0.0)] * spec.memory_length, maxlen=spec.memory_length)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) in px of the camera frames this pilot takes."""
        return self.spec.width, self.spec.height

    def run(self, image: np.ndarray) -> tuple[float, float]:
        inputs = {self.spec.image_input: prepare_frame(image, self.spec)}
        if self.memory is not None:
            inputs[self.spec.memory_input] = np.asarray(self.memory, dtype=np.float32).reshape(1, -1)

        results = self.model.predict(inputs)
        angle = self.spec.outputs["angle"].decode(results[self.output_keys["angle"]])
        throttle = self.spec.outputs["throttle"].decode(results[self.output_keys["throttle"]])

        if self.memory is not None:
            self.memory.append((angle, throttle))
        return angle, throttle

    def describe(self) -> str:
        width, height = self.frame_size
        return f"{self.path.name} ({self.spec.type}, {self.backend}, {width}x{height} px)"


def _find_output(model: Any, output: OutputSpec, spec: ModelSpec, path: Path) -> str:
    names = model.output_names
    if output.name in names:
        _check_output_size(model, output.name, output, spec, path)
        return output.name
    # A model whose Keras outputs were a list (not a dict) loses the names in
    # TFLite: its signature calls them output_0, output_1 in Keras order.
    positional = f"output_{output.position}"
    if output.position is not None and positional in names:
        key = positional
    else:
        raise ModelError(
            f"model {path} has no output named {output.name!r} (it has {', '.join(names)}); "
            f"the sidecar {spec.source} and the model do not belong together, or pilot.donkey_type is wrong"
        )
    _check_output_size(model, key, output, spec, path)
    return key


def _check_output_size(model: Any, key: str, output: OutputSpec, spec: ModelSpec, path: Path) -> None:
    size = model.output_size(key)
    if output.kind == "value":
        fits = size == 1
        expected = "1 value"
    else:
        fits = size > 1 and (output.bins == 0 or size == output.bins)
        expected = f"{output.bins or 'several'} bins"
    if not fits:
        raise ModelError(
            f"model {path} output {output.name!r} has {size} values but {spec.source} expects {expected}; "
            "the sidecar and the model do not belong together, or pilot.donkey_type is wrong"
        )


def resolve_model_file(path: Path) -> Path:
    """Return the model file for ``path``: a model file itself, or the file a sidecar names (.tflite first)."""
    if path.suffix == ".json":
        spec = read_sidecar(path)
        for kind in ("tflite", "keras"):
            name = spec.files.get(kind)
            if name and (path.parent / name).is_file():
                return path.parent / name
        raise ModelError(f"sidecar {path} names no model file that exists ({spec.files}); copy the .tflite beside it")
    if path.suffix not in MODEL_SUFFIXES:
        raise ModelError(f"{path} is not a model file: expected a name ending in .tflite, .keras, .h5 or .json")
    if not path.is_file():
        raise ModelError(f"model file {path} not found; check pilot.model or --model (relative to the car folder)")
    return path


def load_pilot(path: str | Path, cfg: Any = None, donkey_type: str | None = None,
               num_threads: int | None = None) -> Pilot:
    """Load a model file and its sidecar into a Pilot, checked against the camera in ``cfg``.

    ``donkey_type`` defaults to ``cfg.pilot.donkey_type``; it is needed only for
    a Donkey Car model without a sidecar. Raises ModelError when the file or
    sidecar is missing or broken, or when the model's frame size differs from
    ``cfg.camera.width`` x ``cfg.camera.height``.
    """
    path = resolve_model_file(Path(path))
    if donkey_type is None and cfg is not None:
        donkey_type = cfg.pilot.donkey_type

    if path.suffix == ".tflite":
        model = TFLiteModel(path, num_threads=num_threads)
    else:
        model = KerasModel(path)

    sidecar = sidecar_path(path)
    if sidecar.is_file() and donkey_type is None:
        spec = read_sidecar(sidecar)
    elif donkey_type is not None:
        image_input = "img_in" if model.has_input("img_in") else None
        if image_input is None:
            raise ModelError(f"model {path} has no input named 'img_in', so it is not a Donkey Car "
                             f"{donkey_type} model; check pilot.donkey_type")
        spec = donkey_spec(donkey_type, model.input_shape(image_input), str(path))
    else:
        raise ModelError(
            f"model {path} has no sidecar {sidecar.name}; if it is a Donkey Car model, set pilot.donkey_type "
            "to linear or categorical, otherwise copy its .json file beside it"
        )

    _check_input(model, spec, path)
    pilot = Pilot(path, model, spec)
    if cfg is not None:
        check_camera_size(pilot, cfg.camera.width, cfg.camera.height)
    log.info("loaded pilot %s", pilot.describe())
    return pilot


def _check_input(model: Any, spec: ModelSpec, path: Path) -> None:
    if not model.has_input(spec.image_input):
        raise ModelError(f"model {path} has no input named {spec.image_input!r}, which its sidecar "
                         f"{spec.source} names as the image input")
    actual = model.input_shape(spec.image_input)
    expected = spec.network_shape
    if tuple(actual) != expected:
        raise ModelError(
            f"model {path} takes {actual[1]}x{actual[0]}x{actual[2]} images but its sidecar {spec.source} "
            f"describes {expected[1]}x{expected[0]}x{expected[2]} (after crop); export the model again"
        )
    if spec.memory_input and not model.has_input(spec.memory_input):
        raise ModelError(f"model {path} has no input named {spec.memory_input!r} for the memory model")


def check_camera_size(pilot: Pilot, width: int, height: int) -> None:
    """Raise ModelError unless the camera's frame size is the one the pilot was trained on."""
    model_width, model_height = pilot.frame_size
    if (model_width, model_height) != (width, height):
        raise ModelError(
            f"model {pilot.path.name} expects {model_width}x{model_height} px camera frames but the camera "
            f"delivers {width}x{height} px; set camera.width: {model_width} and camera.height: {model_height} "
            f"in myconfig.yaml, or train a model on {width}x{height} frames"
        )


# -- the drive-loop part ------------------------------------------------------------


@dataclass
class _Output:
    angle: float
    throttle: float
    inference_ms: float
    output_time: float
    capture_time: float | None


class PilotPart:
    """Drive-loop part that runs a Pilot on camera frames.

    Inputs: cam/image_array, cam/capture_time. Outputs: pilot/angle,
    pilot/throttle, pilot/inference_ms, pilot/output_time (``clock()`` seconds
    when the outputs were produced) and pilot/frame_age_ms (how old, when the
    loop reads them, the frame they came from is).

    Added with ``threaded=True``, inference runs on the part's own thread on
    the newest frame, so a slow model does not slow the loop; the loop reads
    the newest finished outputs. The safety stage detects a stalled pilot from
    pilot/output_time. A frame whose capture time equals that of the
    frame already processed is not run again.

    With ``reload_on_change``, the model file and its sidecar are checked at
    most once per ``reload_interval_s``; a change that has stayed unchanged
    for one check is loaded on a helper thread (so the loop never waits for
    it) and swapped in only once it has loaded and run one frame. A broken
    new model is logged and the old one keeps driving.
    """

    def __init__(
        self,
        pilot: Pilot,
        loader: Callable[[Path], Pilot] | None = None,
        reload_on_change: bool = False,
        reload_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.pilot = pilot
        self.loader = loader or (lambda path: load_pilot(path, donkey_type=None))
        self.reload_on_change = reload_on_change
        self.reload_interval_s = reload_interval_s
        self.clock = clock
        self.reloads = 0
        self.failed_reloads = 0

        self._latest: _Output | None = None
        self._condition = threading.Condition()
        self._pending: tuple[np.ndarray, float | None] | None = None
        self._running = True
        self._last_capture: float | None = None

        self._file_state = self._stat() if reload_on_change else None
        self._next_check_s = clock() + reload_interval_s
        self._candidate_state: Any = None
        self._rejected_state: Any = None
        self._reload_thread: threading.Thread | None = None
        self._replacement: Pilot | None = None

    # -- inline use -------------------------------------------------------------

    def run(self, image: np.ndarray | None, capture_time: float | None = None) -> tuple[Any, ...]:
        self._poll_reload()
        if image is not None and not self._seen(capture_time):
            self._infer(image, capture_time)
        return self._outputs()

    # -- threaded use -------------------------------------------------------------

    def run_threaded(self, image: np.ndarray | None, capture_time: float | None = None) -> tuple[Any, ...]:
        if image is not None:
            with self._condition:
                self._pending = (image, capture_time)
                self._condition.notify()
        return self._outputs()

    def update(self) -> None:
        log.info("pilot thread started")
        while True:
            with self._condition:
                while self._running and self._pending is None:
                    self._condition.wait(timeout=self.reload_interval_s)
                    if self._pending is None:
                        break
                if not self._running:
                    break
                job, self._pending = self._pending, None

            self._poll_reload()
            if job is not None and not self._seen(job[1]):
                self._infer(*job)
        log.info("pilot thread stopped")

    def shutdown(self) -> None:
        with self._condition:
            self._running = False
            self._condition.notify_all()
        if self._reload_thread is not None:
            self._reload_thread.join(timeout=5.0)

    # -- inference --------------------------------------------------------------------

    def _seen(self, capture_time: float | None) -> bool:
        if capture_time is not None and capture_time == self._last_capture:
            return True
        self._last_capture = capture_time
        return False

    def _infer(self, image: np.ndarray, capture_time: float | None) -> None:
        started = time.perf_counter()
        angle, throttle = self.pilot.run(image)
        inference_ms = (time.perf_counter() - started) * 1000.0
        self._latest = _Output(angle, throttle, inference_ms, self.clock(), capture_time)

    @property
    def output_capture_time(self) -> float | None:
        """Capture time of the frame behind the newest outputs, or None before the first output."""
        latest = self._latest
        return latest.capture_time if latest is not None else None

    def _outputs(self) -> tuple[Any, ...]:
        latest = self._latest
        if latest is None:
            return None, None, None, None, None
        age_ms = None
        if latest.capture_time is not None:
            age_ms = (self.clock() - latest.capture_time) * 1000.0
        return latest.angle, latest.throttle, latest.inference_ms, latest.output_time, age_ms

    # -- reloading ----------------------------------------------------------------------

    def _stat(self) -> tuple[Any, ...]:
        state = []
        for path in (self.pilot.path, sidecar_path(self.pilot.path)):
            try:
                info = path.stat()
                state.append((info.st_mtime_ns, info.st_size))
            except OSError:
                state.append(None)
        return tuple(state)

    def _poll_reload(self) -> None:
        if not self.reload_on_change:
            return
        if self._replacement is not None:
            self._swap()
        now = self.clock()
        if now < self._next_check_s:
            return
        self._next_check_s = now + self.reload_interval_s
        if self._reload_thread is not None and self._reload_thread.is_alive():
            return

        state = self._stat()
        if state == self._file_state or state == self._rejected_state:
            self._candidate_state = None
            return
        if state != self._candidate_state:
            # Changed since the last check: wait one more interval, so a file
            # that is still being copied is not loaded half-written.
            self._candidate_state = state
            return
        self._candidate_state = None
        self._reload_thread = threading.Thread(target=self._load_replacement, args=(state,),
                                               name="pilot-reload", daemon=True)
        self._reload_thread.start()

    def _load_replacement(self, state: tuple[Any, ...]) -> None:
        path = self.pilot.path
        log.info("model file %s changed; loading the new version", path)
        try:
            replacement = self.loader(path)
            if replacement.frame_size != self.pilot.frame_size:
                raise ModelError(f"the new model takes {replacement.frame_size[0]}x{replacement.frame_size[1]} px "
                                 f"frames, the camera delivers {self.pilot.frame_size[0]}x{self.pilot.frame_size[1]} px")
            width, height = replacement.frame_size
            angle, throttle = replacement.run(np.zeros((height, width, 3), dtype=np.uint8))
            if not (math.isfinite(angle) and math.isfinite(throttle)):
                raise ModelError(f"the new model returned angle={angle}, throttle={throttle} on a blank frame")
        except Exception as error:  # any broken file: keep driving with the old model
            self.failed_reloads += 1
            self._rejected_state = state
            log.error("new version of %s rejected, still driving with the previous model: %s", path, error)
            return
        self._file_state = state
        self._replacement = replacement

    def _swap(self) -> None:
        replacement, self._replacement = self._replacement, None
        if replacement.memory is not None and self.pilot.memory is not None:
            replacement.memory.extend(self.pilot.memory)
        self.pilot = replacement
        self.reloads += 1
        log.info("now driving with the new version of %s", replacement.describe())
