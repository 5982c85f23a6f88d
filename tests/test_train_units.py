"""Training building blocks: sidecar reader, block split, augmentations, pipeline, model index."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from autodrive.cli import main
from autodrive.train.index import read_index, write_index
from autodrive.train.sidecar import SidecarError, bin_centres, load_sidecar, validate_sidecar
from autodrive.train.split import block_split

REPO = Path(__file__).resolve().parents[1]
REAL_TUB = REPO.parent / "shared" / "data" / "tubs" / "donkeycar-track-2020"


def valid_sidecar(name: str = "pilot_a", model_type: str = "linear") -> dict:
    return {
        "autodrive_model": 1,
        "name": name,
        "type": model_type,
        "created": "2026-12-04T21:00:00+00:00",
        "input": {"width": 160, "height": 120, "crop_top": 40, "crop_bottom": 0,
                  "color": "rgb", "scale": 255.0, "dtype": "float32"},
        "image_input": "img_in",
        "memory_input": None,
        "memory_length": 0,
        "outputs": {"angle": {"name": "angle", "kind": "value"}, "throttle": {"name": "throttle", "kind": "value"}},
        "files": {"keras": f"{name}.keras", "tflite": f"{name}.tflite"},
        "training": {"tubs": ["/data/tub"], "records": {"train": 800, "validation": 200, "skipped": {}},
                     "epochs": 3, "metrics": {"val_angle_mae": 0.1, "val_throttle_mae": 0.05}, "quantize": None},
    }


# -- sidecar -------------------------------------------------------------------

def test_sidecar_valid_roundtrip(tmp_path):
    path = tmp_path / "pilot_a.json"
    path.write_text(json.dumps(valid_sidecar()))
    assert load_sidecar(path) == valid_sidecar()


def test_sidecar_found_from_model_path(tmp_path):
    (tmp_path / "pilot_a.json").write_text(json.dumps(valid_sidecar()))
    assert load_sidecar(tmp_path / "pilot_a.tflite")["name"] == "pilot_a"


def test_sidecar_missing_file(tmp_path):
    with pytest.raises(SidecarError, match="not found; train the model"):
        load_sidecar(tmp_path / "nothing.tflite")


def test_sidecar_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"autodrive_model": 1,')
    with pytest.raises(SidecarError, match="is not valid JSON"):
        load_sidecar(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda data: data.pop("autodrive_model"), "autodrive_model is missing"),
        (lambda data: data.update(autodrive_model=2), "newer autodrive"),
        (lambda data: data.update(type="transformer"), "type must be one of"),
        (lambda data: data["input"].update(width=0), "input.width must be a whole number"),
        (lambda data: data["input"].update(crop_top=120), "leaves no rows"),
        (lambda data: data["input"].update(scale=0), "input.scale must be above 0"),
        (lambda data: data["input"].update(color="yuv"), "input.color must be one of"),
        (lambda data: data["outputs"].pop("throttle"), "outputs.throttle is missing"),
        (lambda data: data["outputs"]["angle"].update(kind="bins", bins=15, low=1.0, high=-1.0),
         "outputs.angle.low must be below high"),
        (lambda data: data.update(memory_input="mem_in"), "memory_input must be null"),
        (lambda data: data["files"].pop("tflite"), "files.tflite must be non-empty text"),
    ],
)
def test_sidecar_invalid_field(change, message):
    data = copy.deepcopy(valid_sidecar())
    change(data)
    with pytest.raises(SidecarError, match=message):
        validate_sidecar(data)


def test_sidecar_memory_model_needs_input():
    data = valid_sidecar(model_type="memory")
    with pytest.raises(SidecarError, match="memory_input must name the memory input"):
        validate_sidecar(data)
    data["memory_input"] = "mem_in"
    data["memory_length"] = 3
    validate_sidecar(data)


def test_sidecar_reader_without_tensorflow():
    script = (
        "import sys\n"
        "import autodrive.train.sidecar, autodrive.train.index, autodrive.train.trainer\n"
        "print('tensorflow loaded:', 'tensorflow' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert "tensorflow loaded: False" in completed.stdout, completed.stderr


def test_bin_centres_ends_and_spacing():
    centres = bin_centres(-1.0, 1.0, 5)
    assert centres == pytest.approx([-1.0, -0.5, 0.0, 0.5, 1.0])


# -- block split -----------------------------------------------------------------

def _runs(positions: np.ndarray) -> list[tuple[int, int]]:
    """Return (start, length) of each run of consecutive positions."""
    runs = []
    for position in positions:
        if runs and runs[-1][0] + runs[-1][1] == position:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((int(position), 1))
    return runs


def test_split_whole_blocks():
    tub_ids = np.zeros(1000, dtype=np.int32)
    train, validation = block_split(tub_ids, block_length=100, validation_fraction=0.2, seed=1)
    assert len(train) + len(validation) == 1000
    assert not set(train) & set(validation)
    assert len(validation) == 200
    for start, length in _runs(validation):
        assert start % 100 == 0
        assert length % 100 == 0


def test_split_same_seed_same_split():
    tub_ids = np.zeros(1000, dtype=np.int32)
    first = block_split(tub_ids, 50, 0.2, seed=7)
    second = block_split(tub_ids, 50, 0.2, seed=7)
    other = block_split(tub_ids, 50, 0.2, seed=8)
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[1], other[1])


def test_split_blocks_restart_at_each_tub():
    # Tub 0 has 150 records, so tub 1's blocks start at position 150, not 200.
    tub_ids = np.concatenate([np.zeros(150, dtype=np.int32), np.ones(250, dtype=np.int32)])
    _, validation = block_split(tub_ids, block_length=100, validation_fraction=0.25, seed=3)
    block_starts = {0, 100, 150, 250, 350}
    for start, _ in _runs(validation):
        assert start in block_starts


def test_split_single_block_still_splits():
    tub_ids = np.zeros(60, dtype=np.int32)
    train, validation = block_split(tub_ids, block_length=100, validation_fraction=0.2, seed=0)
    assert len(train) > 0
    assert len(validation) > 0


# -- augmentations -----------------------------------------------------------------

def _frames(count: int = 8) -> np.ndarray:
    generator = np.random.default_rng(0)
    return generator.uniform(0.0, 1.0, size=(count, 12, 16, 3)).astype(np.float32)


def test_flip_negates_angle_and_memory():
    from autodrive.train.augment import random_flip

    images = _frames(64)
    angles = np.linspace(-0.9, 0.9, 64).astype(np.float32)
    memory = np.tile(np.array([0.3, 0.6, -0.2, 0.7], dtype=np.float32), (64, 1))
    flipped, new_angles, new_memory = (value.numpy() for value in random_flip(images, angles, memory))

    mirrored = np.all(flipped == images[:, :, ::-1, :], axis=(1, 2, 3))
    unchanged = np.all(flipped == images, axis=(1, 2, 3))
    assert np.all(mirrored | unchanged)
    assert mirrored.any()
    assert unchanged.any()
    np.testing.assert_allclose(new_angles[mirrored], -angles[mirrored])
    np.testing.assert_allclose(new_angles[unchanged], angles[unchanged])
    np.testing.assert_allclose(new_memory[mirrored], memory[mirrored] * [-1, 1, -1, 1])
    np.testing.assert_allclose(new_memory[unchanged], memory[unchanged])


def test_brightness_contrast_stays_in_range():
    from autodrive.train.augment import random_brightness_contrast

    images = _frames()
    changed = random_brightness_contrast(images).numpy()
    assert changed.shape == images.shape
    assert changed.min() >= 0.0
    assert changed.max() <= 1.0
    assert not np.allclose(changed, images)


def test_shadow_only_darkens():
    from autodrive.train.augment import random_shadow

    images = _frames(32)
    shadowed = random_shadow(images).numpy()
    assert np.all(shadowed <= images)
    assert np.any(shadowed < images)


def test_blur_smooths_noise():
    from autodrive.train.augment import random_blur

    images = _frames(32)
    blurred = random_blur(images).numpy()
    changed = ~np.all(blurred == images, axis=(1, 2, 3))
    assert changed.any()
    # Blurring uniform noise lowers its variance; the mean stays close.
    assert blurred[changed].std() < images[changed].std()
    assert abs(blurred[changed].mean() - images[changed].mean()) < 0.02


# -- pipeline --------------------------------------------------------------------------

needs_real_tub = pytest.mark.skipif(not REAL_TUB.is_dir(), reason=f"real tub not found at {REAL_TUB}")


def _real_examples(count: int):
    from autodrive.train.records import collect_examples

    examples = collect_examples([REAL_TUB])
    return examples.subset(np.arange(count))


@needs_real_tub
def test_pipeline_decodes_and_crops():
    from autodrive.train.pipeline import PipelineSettings, load_frames

    examples = _real_examples(4)
    settings = PipelineSettings(width=160, height=120, crop_top=40, crop_bottom=10, batch_size=2)
    frames = load_frames(examples, settings)["img_in"]
    assert frames.shape == (4, 70, 160, 3)
    assert frames.dtype == np.float32

    # The pipeline decodes with the accurate integer IDCT, as OpenCV does, so
    # the pixels match a frame that the car decodes from the same file.
    reference = cv2.cvtColor(cv2.imread(examples.image_paths[0]), cv2.COLOR_BGR2RGB)[40:110]
    np.testing.assert_array_equal(np.round(frames[0] * 255).astype(np.uint8), reference)


@needs_real_tub
def test_pipeline_resizes_to_camera_size():
    from autodrive.train.pipeline import PipelineSettings, load_frames

    settings = PipelineSettings(width=80, height=60, crop_top=10, batch_size=4)
    frames = load_frames(_real_examples(4), settings)["img_in"]
    assert frames.shape == (4, 50, 80, 3)


@needs_real_tub
def test_augmentation_never_compounds():
    # Flip alone: every epoch's frame is the cached original or its mirror, never a flip of a flip of a change.
    from autodrive.train.options import Augmentations
    from autodrive.train.pipeline import PipelineSettings, load_frames, make_dataset

    examples = _real_examples(16)
    settings = PipelineSettings(width=160, height=120, batch_size=16, augmentations=Augmentations(flip=True))
    originals = load_frames(examples, settings)["img_in"]

    dataset = make_dataset(examples, settings, training=True, cache=True)
    for _ in range(3):
        for features, labels in dataset:
            images = features["img_in"].numpy()
            angles = labels["angle"].numpy().reshape(-1)
            for image, angle in zip(images, angles):
                plain = list(originals[examples.angles == angle])
                mirrored = [original[:, ::-1] for original in originals[examples.angles == -angle]]
                assert any(np.array_equal(image, candidate) for candidate in plain + mirrored)


@needs_real_tub
def test_validation_batches_unchanged():
    from autodrive.train.options import Augmentations
    from autodrive.train.pipeline import PipelineSettings, load_frames, make_dataset

    examples = _real_examples(8)
    settings = PipelineSettings(
        width=160, height=120, batch_size=8,
        augmentations=Augmentations(brightness=True, blur=True, flip=True, shadow=True),
    )
    originals = load_frames(examples, PipelineSettings(width=160, height=120, batch_size=8))["img_in"]
    features, labels = next(iter(make_dataset(examples, settings, training=False)))
    np.testing.assert_array_equal(features["img_in"].numpy(), originals)
    np.testing.assert_allclose(labels["angle"].numpy().reshape(-1), examples.angles)


def test_bins_encode_nearest_centre():
    import tensorflow as tf

    from autodrive.train.models import Bins

    bins = Bins(5, -1.0, 1.0)
    encoded = bins.encode(tf.constant([-1.0, -0.3, 0.0, 0.74, 1.0])).numpy()
    np.testing.assert_array_equal(encoded.argmax(axis=1), [0, 1, 2, 3, 4])


def test_model_layer_names():
    from autodrive.train.models import Bins, ModelSpec, build_model

    linear = build_model(ModelSpec("linear", height=80, width=160))
    assert [tensor.name for tensor in linear.inputs] == ["img_in"]
    assert sorted(linear.output_names) == ["angle", "throttle"]

    memory = build_model(ModelSpec("memory", height=80, width=160, memory_length=3))
    assert sorted(tensor.name for tensor in memory.inputs) == ["img_in", "mem_in"]
    outputs = memory({"img_in": np.zeros((1, 80, 160, 3), np.float32), "mem_in": np.zeros((1, 6), np.float32)})
    assert outputs["angle"].shape == (1, 1)

    categorical = build_model(
        ModelSpec("categorical", height=80, width=160, angle_bins=Bins(15, -1, 1), throttle_bins=Bins(20, 0, 1))
    )
    outputs = categorical({"img_in": np.zeros((1, 80, 160, 3), np.float32)})
    assert outputs["angle"].shape == (1, 15)
    assert outputs["throttle"].shape == (1, 20)


# -- model index -------------------------------------------------------------------------

def test_index_lists_valid_sidecars(tmp_path):
    (tmp_path / "b.json").write_text(json.dumps(valid_sidecar("b")))
    older = valid_sidecar("a")
    older["created"] = "2025-01-01T00:00:00+00:00"
    (tmp_path / "a.json").write_text(json.dumps(older))
    (tmp_path / "notes.json").write_text('{"unrelated": true}')
    write_index(tmp_path)
    index = json.loads((tmp_path / "index.json").read_text())
    assert [entry["name"] for entry in index["models"]] == ["a", "b"]
    assert index["models"][0]["val_angle_mae"] == 0.1


def test_models_command_with_corrupt_index(tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    (models / "pilot_a.json").write_text(json.dumps(valid_sidecar()))
    (models / "index.json").write_text("{not json")
    assert [entry["name"] for entry in read_index(models)] == ["pilot_a"]
    with pytest.raises(SystemExit) as stopped:
        main(["models", "--car", str(tmp_path)])
    assert stopped.value.code == 0
    assert "pilot_a" in capsys.readouterr().out


def test_models_command_without_models(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["models", "--car", str(tmp_path)])
    assert stopped.value.code == 0
    assert "no trained models" in capsys.readouterr().out
