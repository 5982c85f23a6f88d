"""Training input checks: bad tubs and options fail with one line before TensorFlow starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from autodrive.cli import main
from autodrive.config import default_config
from autodrive.train.records import TrainingDataError, collect_examples, find_tubs
from autodrive.tub import TubWriter, open_tub
from autodrive.tub.record import IMAGE_INVALID, IMAGE_MISSING

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
REAL_TUB = DATA / "tubs" / "donkeycar-track-2020"
INPUTS = ["cam/image_array", "user/angle", "user/throttle", "user/mode"]
TYPES = ["image_array", "float", "float", "str"]

pytestmark = pytest.mark.skipif(not REAL_TUB.is_dir(), reason=f"real tub not found at {REAL_TUB}")


def _copy_tub(destination: Path, count: int, size: tuple[int, int] | None = None, labels=None) -> Path:
    """Write the first ``count`` real records to a new tub, resized to ``size`` (width, height) if given.

    ``labels`` maps a record number to (angle, throttle) replacing the recorded ones.
    """
    source = open_tub(REAL_TUB)
    with TubWriter(destination, INPUTS, TYPES) as writer:
        for number, record in enumerate(source.records()):
            if number == count:
                break
            if size is None:
                image = record.image_path.read_bytes()
            else:
                image = cv2.resize(source.load_image(record), size, interpolation=cv2.INTER_AREA)
            angle, throttle = (labels or {}).get(number, (record.values["user/angle"], record.values["user/throttle"]))
            writer.write(
                {"cam/image_array": image, "user/angle": angle, "user/throttle": throttle, "user/mode": "user"},
                block=True,
            )
    return destination


def _image_paths(tub_path: Path) -> list[Path]:
    return [record.image_path for record in open_tub(tub_path).records()]


def _run_cli(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stopped:
        main(args)
    return stopped.value.code, capsys.readouterr().err


def test_no_tubs_found(tmp_path, capsys):
    empty = tmp_path / "data"
    empty.mkdir()
    code, error = _run_cli(["train", "--car", str(tmp_path), "--tub", str(empty)], capsys)
    assert code == 1
    assert f"no tubs found in {empty}" in error
    assert len(error.strip().splitlines()) == 1


def test_missing_tub_folder(tmp_path, capsys):
    code, error = _run_cli(["train", "--car", str(tmp_path), "--tub", str(tmp_path / "nowhere")], capsys)
    assert code == 1
    assert "not found" in error
    assert "--tub PATH" in error


def test_default_tub_from_config(tmp_path, capsys):
    # Without --tub the car's recording.tub (data/) is used, and here it contains no tub.
    (tmp_path / "data").mkdir()
    code, error = _run_cli(["train", "--car", str(tmp_path)], capsys)
    assert code == 1
    assert f"no tubs found in {tmp_path / 'data'}" in error


def test_zero_usable_records(tmp_path, capsys):
    tub = _copy_tub(tmp_path / "tub", 5)
    for image_path in _image_paths(tub):
        image_path.unlink()
    code, error = _run_cli(["train", "--car", str(tmp_path), "--tub", str(tub)], capsys)
    assert code == 1
    assert "no usable records" in error
    assert f"5 {IMAGE_MISSING}" in error
    assert len(error.strip().splitlines()) == 1


def test_fewer_records_than_batch(tmp_path, capsys):
    code, error = _run_cli(
        ["train", "--car", str(tmp_path), "--tub", str(REAL_TUB), "--batch-size", "2000"], capsys
    )
    assert code == 1
    assert "only 1000 usable records" in error
    assert "fewer than one batch of 2000" in error
    assert "--batch-size" in error


def test_different_image_sizes(tmp_path, capsys):
    full = _copy_tub(tmp_path / "full", 20)
    small = _copy_tub(tmp_path / "small", 20, size=(80, 60))
    code, error = _run_cli(
        ["train", "--car", str(tmp_path), "--tub", str(full), "--tub", str(small), "--batch-size", "8"], capsys
    )
    assert code == 1
    assert "tubs have different image sizes" in error
    assert "160x120" in error
    assert "80x60" in error


def test_unknown_model_type(tmp_path, capsys):
    code, error = _run_cli(["train", "--car", str(tmp_path), "--tub", str(REAL_TUB), "--type", "lineer"], capsys)
    assert code == 2
    assert "unknown model type 'lineer'" in error
    assert "linear, categorical, memory" in error


def test_unknown_quantization(tmp_path, capsys):
    code, error = _run_cli(["train", "--car", str(tmp_path), "--tub", str(REAL_TUB), "--quantize", "int4"], capsys)
    assert code == 2
    assert "unknown quantization 'int4'" in error


def test_bad_input_leaves_tensorflow_unloaded(tmp_path):
    # A fresh interpreter shows whether the failed check imported TensorFlow.
    script = (
        "import sys\n"
        "from autodrive.config import default_config\n"
        "from autodrive.errors import AutodriveError\n"
        "from autodrive.train.trainer import plan_training\n"
        "try:\n"
        f"    plan_training(default_config(), tubs=[{str(REAL_TUB)!r}], batch_size=4000, models_dir={str(tmp_path)!r})\n"
        "except AutodriveError as error:\n"
        "    print('error:', error)\n"
        "print('tensorflow loaded:', 'tensorflow' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert "fewer than one batch" in completed.stdout, completed.stderr
    assert "tensorflow loaded: False" in completed.stdout


def test_skipped_records_counted(tmp_path):
    tub = _copy_tub(tmp_path / "tub", 30, labels={3: (None, 0.5), 4: (0.1, float("nan")), 5: (1.5, 0.5)})
    images = _image_paths(tub)
    images[10].unlink()
    images[11].unlink()
    truncated = images[12].read_bytes()
    images[12].write_bytes(truncated[: len(truncated) // 2])
    images[13].write_bytes(b"not a jpeg at all")

    examples = collect_examples(find_tubs([tub]))

    assert examples.skipped["angle is null"] == 1
    assert examples.skipped["throttle is null"] == 1
    assert examples.skipped["angle is outside -1..1"] == 1
    assert examples.skipped[IMAGE_MISSING] == 2
    assert examples.skipped[IMAGE_INVALID] == 2
    assert len(examples) == 30 - 7
    assert np.all(np.isfinite(examples.angles))


def test_skipped_records_in_sidecar_plan(tmp_path):
    from autodrive.train.trainer import plan_training

    tub = _copy_tub(tmp_path / "tub", 40)
    _image_paths(tub)[0].unlink()
    plan = plan_training(default_config(), tubs=[tub], batch_size=8, models_dir=tmp_path / "models")
    assert dict(plan.examples.skipped) == {IMAGE_MISSING: 1}
    assert len(plan.train_positions) + len(plan.validation_positions) == 39


def test_memory_pairs_follow_records(tmp_path):
    tub = _copy_tub(tmp_path / "tub", 10)
    examples = collect_examples(find_tubs([tub]), memory_length=3)
    assert examples.memory.shape == (10, 6)
    assert np.all(examples.memory[0] == 0.0)
    # Row 4 contains records 1, 2 and 3 as (angle, throttle) pairs, newest last.
    expected = np.stack([examples.angles[1:4], examples.throttles[1:4]], axis=1).reshape(-1)
    np.testing.assert_allclose(examples.memory[4], expected)


def test_folder_of_tubs_found(tmp_path):
    _copy_tub(tmp_path / "data" / "tub_1", 3)
    _copy_tub(tmp_path / "data" / "tub_2", 3)
    (tmp_path / "data" / "notes").mkdir()
    tubs = find_tubs([tmp_path / "data"])
    assert [tub.name for tub in tubs] == ["tub_1", "tub_2"]


def test_different_sizes_error_type(tmp_path):
    full = _copy_tub(tmp_path / "full", 3)
    small = _copy_tub(tmp_path / "small", 3, size=(80, 60))
    with pytest.raises(TrainingDataError) as raised:
        collect_examples([full, small])
    assert isinstance(raised.value, ValueError)


def test_sidecar_written_only_by_training(tmp_path, capsys):
    # A failed check writes nothing into models/.
    code, _ = _run_cli(["train", "--car", str(tmp_path), "--tub", str(REAL_TUB), "--batch-size", "2000"], capsys)
    assert code == 1
    assert not (tmp_path / "models").exists()

