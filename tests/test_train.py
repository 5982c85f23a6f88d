"""Training end to end on the real Donkey Car tub: each model type, its files and its TFLite copy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autodrive.cli import main
from autodrive.config import default_config
from autodrive.train.index import read_index
from autodrive.train.sidecar import load_sidecar

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_TUB = DATA / "tubs" / "donkeycar-track-2020"
COMPARED_FRAMES = 16

pytestmark = pytest.mark.skipif(not REAL_TUB.is_dir(), reason=f"real tub not found at {REAL_TUB}")


def _train(models_dir: Path, model_type: str, **options):
    from autodrive.train.trainer import plan_training, run_training

    config = default_config(training__batch_size=64)
    plan = plan_training(
        config, tubs=[REAL_TUB], model_type=model_type, name=f"test_{model_type}",
        models_dir=models_dir, epochs=1, progress=0, **options,
    )
    return plan, run_training(plan)


def _tflite_outputs(tflite_path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the TFLite model frame by frame through its signature runner, outputs keyed by name."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite_path))
    runner = interpreter.get_signature_runner()
    rows: dict[str, list[np.ndarray]] = {}
    for frame in range(len(inputs["img_in"])):
        outputs = runner(**{name: values[frame: frame + 1] for name, values in inputs.items()})
        for name, value in outputs.items():
            rows.setdefault(name, []).append(value)
    return {name: np.concatenate(values) for name, values in rows.items()}


def _validation_inputs(plan, sidecar) -> dict[str, np.ndarray]:
    from autodrive.train.pipeline import PipelineSettings, load_frames

    settings = PipelineSettings(
        width=sidecar["input"]["width"], height=sidecar["input"]["height"],
        crop_top=sidecar["input"]["crop_top"], crop_bottom=sidecar["input"]["crop_bottom"],
        batch_size=8, model_type="linear",
    )
    return load_frames(plan.validation_examples, settings, limit=COMPARED_FRAMES)


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["linear", "categorical", "memory"])
def test_train_model_type_outputs(tmp_path, model_type):
    import keras

    models_dir = tmp_path / "models"
    plan, sidecar = _train(models_dir, model_type)
    name = f"test_{model_type}"

    for file_name in (f"{name}.keras", f"{name}.tflite", f"{name}.json", f"{name}_curves.png",
                      f"{name}_predictions.png", "index.json"):
        assert (models_dir / file_name).is_file(), file_name

    written = load_sidecar(models_dir / f"{name}.json")
    assert written == sidecar
    assert written["type"] == model_type
    assert written["image_input"] == "img_in"
    assert written["training"]["records"]["train"] + written["training"]["records"]["validation"] == 1000
    assert written["training"]["records"]["skipped"] == {}
    assert written["training"]["epochs"] == 1
    assert np.isfinite(written["training"]["metrics"]["val_angle_mae"])
    assert np.isfinite(written["training"]["metrics"]["val_throttle_mae"])
    if model_type == "memory":
        assert written["memory_input"] == "mem_in"
        assert written["memory_length"] == default_config().training.memory_length
    else:
        assert written["memory_input"] is None
    expected_kind = "bins" if model_type == "categorical" else "value"
    assert written["outputs"]["angle"]["kind"] == expected_kind
    assert written["outputs"]["throttle"]["kind"] == expected_kind

    assert [entry["name"] for entry in read_index(models_dir)] == [name]

    inputs = _validation_inputs(plan, written)
    if model_type == "memory":
        inputs["mem_in"] = plan.validation_examples.memory[:COMPARED_FRAMES]
    keras_outputs = keras.models.load_model(models_dir / f"{name}.keras").predict(inputs, verbose=0)
    tflite_outputs = _tflite_outputs(models_dir / f"{name}.tflite", inputs)
    assert set(tflite_outputs) == {"angle", "throttle"}
    for output_name in ("angle", "throttle"):
        difference = np.abs(keras_outputs[output_name] - tflite_outputs[output_name]).max()
        assert difference <= 1e-4, f"{output_name}: keras and tflite differ by {difference}"


@pytest.mark.slow
def test_train_cli_int8_and_models_list(tmp_path, capsys):
    car = tmp_path / "car"
    car.mkdir()
    args = ["train", "--car", str(car), "--tub", str(REAL_TUB), "--type", "linear", "--name", "quantized",
            "--epochs", "1", "--batch-size", "64", "--quantize", "int8"]
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 0
    output = capsys.readouterr().out
    assert "validation MAE" in output

    sidecar = load_sidecar(car / "models" / "quantized.tflite")
    assert sidecar["training"]["quantize"] == "int8"

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(car / "models" / "quantized.tflite"))
    tensor_types = {detail["dtype"] for detail in interpreter.get_tensor_details()}
    assert np.int8 in tensor_types
    signature = interpreter.get_signature_list()["serving_default"]
    assert signature["inputs"] == ["img_in"]
    assert sorted(signature["outputs"]) == ["angle", "throttle"]
    assert {detail["dtype"] for detail in interpreter.get_input_details()} == {np.float32}

    with pytest.raises(SystemExit) as stopped:
        main(["models", "--car", str(car)])
    assert stopped.value.code == 0
    listing = capsys.readouterr().out
    assert "quantized" in listing
    assert "int8" in listing

    index = json.loads((car / "models" / "index.json").read_text())
    assert [entry["name"] for entry in index["models"]] == ["quantized"]


def test_train_existing_name_rejected(tmp_path, capsys):
    models_dir = tmp_path / "car" / "models"
    models_dir.mkdir(parents=True)
    (models_dir / "taken.keras").write_bytes(b"an earlier model")
    with pytest.raises(SystemExit) as stopped:
        main(["train", "--car", str(tmp_path / "car"), "--tub", str(REAL_TUB), "--name", "taken"])
    assert stopped.value.code == 1
    error = capsys.readouterr().err
    assert "model 'taken' already exists" in error
    assert "--overwrite" in error
    assert (models_dir / "taken.keras").read_bytes() == b"an earlier model"
