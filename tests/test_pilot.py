"""The pilot: loading Keras and TFLite models, feeding frames as trained, outputs by name, reloading."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from autodrive.config import default_config
from autodrive.errors import AutodriveError
from autodrive.parts.pilot import ModelError, PilotPart, load_pilot

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]


# -- model builders shared with the drive tests ----------------------------------


def tiny_trunk(keras, height, width, name="img_in"):
    image = keras.Input(shape=(height, width, 3), name=name)
    features = keras.layers.Conv2D(4, 5, strides=4, activation="relu")(image)
    features = keras.layers.Flatten()(features)
    return image, features


def write_sidecar(path, name, width=160, height=120, crop_top=0, crop_bottom=0, color="rgb",
                  outputs=None, model_type="linear", memory_length=0):
    sidecar = {
        "autodrive_model": 1,
        "name": name,
        "type": model_type,
        "created": "2026-01-01T00:00:00+00:00",
        "input": {"width": width, "height": height, "crop_top": crop_top, "crop_bottom": crop_bottom,
                  "color": color, "scale": 255.0, "dtype": "float32"},
        "image_input": "img_in",
        "memory_input": "mem_in" if model_type == "memory" else None,
        "memory_length": memory_length,
        "outputs": outputs or {"angle": {"name": "angle", "kind": "value"},
                               "throttle": {"name": "throttle", "kind": "value"}},
        "files": {"keras": f"{name}.keras", "tflite": f"{name}.tflite"},
        "training": {"tubs": [], "records": {}, "epochs": 0, "metrics": {}, "quantize": None},
    }
    path.write_text(json.dumps(sidecar), encoding="utf-8")


def save_tflite(model, path):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    path.write_bytes(converter.convert())


def make_linear_model(folder, name="tiny", width=160, height=120, crop_top=0, throttle_first=True, seed=1):
    """Save NAME.keras, NAME.tflite and NAME.json of a small autodrive linear model.

    The output dict lists throttle before angle, and the two output layers get
    different biases, so a pilot that matched outputs by position would swap them.
    """
    import keras

    keras.utils.set_random_seed(seed)
    image, features = tiny_trunk(keras, height - crop_top, width)
    angle = keras.layers.Dense(1, name="angle", bias_initializer=keras.initializers.Constant(0.3))(features)
    throttle = keras.layers.Dense(1, name="throttle", bias_initializer=keras.initializers.Constant(-0.2))(features)
    outputs = {"throttle": throttle, "angle": angle} if throttle_first else {"angle": angle, "throttle": throttle}
    model = keras.Model(image, outputs)

    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / f"{name}.keras")
    save_tflite(model, folder / f"{name}.tflite")
    write_sidecar(folder / f"{name}.json", name, width, height, crop_top=crop_top)
    return model


def camera_frames(count, width=160, height=120, seed=0):
    generator = np.random.default_rng(seed)
    return [generator.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    keras_model = make_linear_model(folder, "tiny")
    make_linear_model(folder, "cropped", crop_top=40, throttle_first=False, seed=2)
    return folder, keras_model


# -- loading and inference -----------------------------------------------------------


def test_keras_and_tflite_agree(models):
    folder, _ = models
    keras_pilot = load_pilot(folder / "tiny.keras")
    tflite_pilot = load_pilot(folder / "tiny.tflite")
    assert keras_pilot.backend == "keras"
    assert tflite_pilot.backend == "tflite"

    for frame in camera_frames(5):
        keras_angle, keras_throttle = keras_pilot.run(frame)
        tflite_angle, tflite_throttle = tflite_pilot.run(frame)
        assert abs(keras_angle - tflite_angle) < 1e-4
        assert abs(keras_throttle - tflite_throttle) < 1e-4


def test_outputs_matched_by_name(models):
    folder, keras_model = models
    pilot = load_pilot(folder / "tiny.tflite")
    frame = camera_frames(1)[0]

    expected = keras_model(frame[None].astype(np.float32) / 255.0, training=False)
    angle, throttle = pilot.run(frame)

    assert abs(angle - float(expected["angle"][0, 0])) < 1e-4
    assert abs(throttle - float(expected["throttle"][0, 0])) < 1e-4
    assert abs(angle - throttle) > 0.1


def test_crop_applied_as_trained(models):
    folder, _ = models
    pilot = load_pilot(folder / "cropped.tflite")
    frame = camera_frames(1)[0]
    changed_top = frame.copy()
    changed_top[:40] = 255 - changed_top[:40]
    changed_bottom = frame.copy()
    changed_bottom[40:] = 255 - changed_bottom[40:]

    assert pilot.run(changed_top) == pilot.run(frame)
    assert pilot.run(changed_bottom) != pilot.run(frame)


def test_sidecar_path_loads_tflite(models):
    folder, _ = models
    pilot = load_pilot(folder / "tiny.json")
    assert pilot.backend == "tflite"


def test_camera_size_mismatch_rejected(models):
    folder, _ = models
    cfg = default_config(camera__width=320, camera__height=240)
    with pytest.raises(ModelError) as caught:
        load_pilot(folder / "tiny.tflite", cfg)
    message = str(caught.value)
    assert "160x120" in message
    assert "320x240" in message
    assert "camera.width" in message


def test_sidecar_disagreeing_with_model_rejected(models, tmp_path):
    folder, _ = models
    shutil.copy(folder / "tiny.tflite", tmp_path / "tiny.tflite")
    write_sidecar(tmp_path / "tiny.json", "tiny", width=160, height=120, crop_top=20)
    with pytest.raises(ModelError, match="after crop"):
        load_pilot(tmp_path / "tiny.tflite")


def test_missing_sidecar_names_donkey_type(models, tmp_path):
    folder, _ = models
    shutil.copy(folder / "tiny.tflite", tmp_path / "tiny.tflite")
    with pytest.raises(ModelError, match="pilot.donkey_type"):
        load_pilot(tmp_path / "tiny.tflite")


def test_missing_model_file_rejected(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_pilot(tmp_path / "absent.tflite")


def test_broken_tflite_rejected(tmp_path):
    (tmp_path / "broken.tflite").write_bytes(b"not a flatbuffer")
    write_sidecar(tmp_path / "broken.json", "broken")
    with pytest.raises(AutodriveError):
        load_pilot(tmp_path / "broken.tflite")


def test_tflite_path_skips_tensorflow(models):
    folder, _ = models
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from autodrive.parts.pilot import load_pilot
        pilot = load_pilot({str(folder / "tiny.tflite")!r})
        angle, throttle = pilot.run(np.zeros((120, 160, 3), dtype=np.uint8))
        heavy = sorted(name for name in ("tensorflow", "keras") if name in sys.modules)
        print("heavy:", ",".join(heavy) or "none")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "heavy: none" in result.stdout


# -- Donkey Car models ------------------------------------------------------------------


@pytest.fixture(scope="module")
def donkey_models(tmp_path_factory):
    import keras

    folder = tmp_path_factory.mktemp("donkey")
    keras.utils.set_random_seed(3)

    image, features = tiny_trunk(keras, 120, 160)
    angle = keras.layers.Dense(1, name="n_outputs0", bias_initializer=keras.initializers.Constant(0.5))(features)
    throttle = keras.layers.Dense(1, name="n_outputs1", bias_initializer=keras.initializers.Constant(-0.5))(features)
    linear = keras.Model(image, [angle, throttle])
    linear.save(folder / "linear.h5")
    save_tflite(linear, folder / "linear.tflite")

    image, features = tiny_trunk(keras, 120, 160)
    angle_bins = keras.layers.Dense(15, activation="softmax", name="angle_out")(features)
    throttle_bins = keras.layers.Dense(20, activation="softmax", name="throttle_out")(features)
    categorical = keras.Model(image, [angle_bins, throttle_bins])
    categorical.save(folder / "categorical.keras")
    save_tflite(categorical, folder / "categorical.tflite")
    return folder, linear, categorical


def test_donkey_linear_models(donkey_models):
    folder, linear, _ = donkey_models
    frame = camera_frames(1, seed=4)[0]
    expected_angle, expected_throttle = (float(value[0, 0]) for value in
                                         linear(frame[None].astype(np.float32) / 255.0, training=False))

    for name in ("linear.tflite", "linear.h5"):
        pilot = load_pilot(folder / name, donkey_type="linear")
        angle, throttle = pilot.run(frame)
        assert abs(angle - expected_angle) < 1e-4, name
        assert abs(throttle - expected_throttle) < 1e-4, name


def test_donkey_categorical_models(donkey_models):
    folder, _, categorical = donkey_models
    frame = camera_frames(1, seed=5)[0]
    angle_bins, throttle_bins = categorical(frame[None].astype(np.float32) / 255.0, training=False)
    expected_angle = np.linspace(-1.0, 1.0, 15)[int(np.argmax(angle_bins))]
    expected_throttle = np.linspace(0.0, 1.0, 20)[int(np.argmax(throttle_bins))]

    for name in ("categorical.tflite", "categorical.keras"):
        pilot = load_pilot(folder / name, donkey_type="categorical")
        angle, throttle = pilot.run(frame)
        assert angle == pytest.approx(expected_angle), name
        assert throttle == pytest.approx(expected_throttle), name


def test_donkey_type_from_config(donkey_models):
    folder, _, _ = donkey_models
    cfg = default_config(pilot__donkey_type="linear")
    pilot = load_pilot(folder / "linear.tflite", cfg)
    assert pilot.spec.type == "linear"


def test_donkey_wrong_type_rejected(donkey_models):
    folder, _, _ = donkey_models
    with pytest.raises(ModelError, match="has 1 values"):
        load_pilot(folder / "linear.tflite", donkey_type="categorical")


# -- the trainer's own model builders ------------------------------------------------------


@pytest.mark.parametrize("model_type", ["linear", "categorical", "memory"])
def test_trainer_models_agree(model_type, tmp_path):
    models = pytest.importorskip("autodrive.train.models")
    if model_type == "categorical":
        spec = models.ModelSpec(model_type, 120, 160, angle_bins=models.Bins(15, -1.0, 1.0),
                                throttle_bins=models.Bins(20, 0.0, 1.0))
        outputs = {"angle": spec.angle_bins.as_sidecar("angle"), "throttle": spec.throttle_bins.as_sidecar("throttle")}
    else:
        spec = models.ModelSpec(model_type, 120, 160, memory_length=3 if model_type == "memory" else 0)
        outputs = None
    model = models.build_model(spec)
    model.save(tmp_path / "real.keras")
    save_tflite(model, tmp_path / "real.tflite")
    write_sidecar(tmp_path / "real.json", "real", outputs=outputs, model_type=model_type,
                  memory_length=spec.memory_length)

    keras_pilot = load_pilot(tmp_path / "real.keras")
    tflite_pilot = load_pilot(tmp_path / "real.tflite")
    for frame in camera_frames(3, seed=6):
        keras_angle, keras_throttle = keras_pilot.run(frame)
        tflite_angle, tflite_throttle = tflite_pilot.run(frame)
        assert abs(keras_angle - tflite_angle) < 1e-4
        assert abs(keras_throttle - tflite_throttle) < 1e-4
    if model_type == "memory":
        assert list(tflite_pilot.memory)[-1] == (tflite_angle, tflite_throttle)


# -- the drive-loop part ---------------------------------------------------------------------


class FakeClock:
    def __init__(self, now=50.0):
        self.now = now

    def __call__(self):
        return self.now


def test_part_outputs_and_frame_age(models):
    folder, _ = models
    clock = FakeClock()
    part = PilotPart(load_pilot(folder / "tiny.tflite"), clock=clock)
    frame = camera_frames(1)[0]

    assert part.run(None, None) == (None, None, None, None, None)
    angle, throttle, inference_ms, output_time, age_ms = part.run(frame, clock.now - 0.03)
    assert (angle, throttle) == part.pilot.run(frame)
    assert inference_ms > 0
    assert output_time == clock.now
    assert age_ms == pytest.approx(30.0)


def test_part_skips_repeated_frame(models):
    folder, _ = models
    clock = FakeClock()
    part = PilotPart(load_pilot(folder / "tiny.tflite"), clock=clock)
    frame = camera_frames(1)[0]

    first = part.run(frame, 49.9)
    clock.now += 1.0
    second = part.run(frame, 49.9)

    assert second[3] == first[3]
    assert second[4] == pytest.approx(first[4] + 1000.0)


def test_threaded_part_uses_newest_frame(models):
    folder, _ = models
    pilot = load_pilot(folder / "tiny.tflite")
    part = PilotPart(pilot)
    frames = camera_frames(3, seed=7)
    expected = pilot.run(frames[2])

    thread = threading.Thread(target=part.update)
    thread.start()
    try:
        assert part.run_threaded(None, None)[0] is None
        part.run_threaded(frames[0], time.monotonic())
        part.run_threaded(frames[1], time.monotonic())
        captured = time.monotonic()
        part.run_threaded(frames[2], captured)
        deadline = time.monotonic() + 30
        outputs = part.run_threaded(None, None)
        while outputs[0] != expected[0] and time.monotonic() < deadline:
            time.sleep(0.01)
            outputs = part.run_threaded(None, None)
    finally:
        part.shutdown()
        thread.join(timeout=10)

    assert not thread.is_alive()
    assert outputs[:2] == expected
    assert outputs[3] >= captured
    assert outputs[4] >= 0


def wait_for_reload(part, clock, count_attr, count):
    """Advance the fake clock one check at a time until the reload counter reaches ``count``."""
    for _ in range(20):
        clock.now += 1.0
        part.run(None, None)
        if part._reload_thread is not None:
            part._reload_thread.join(timeout=60)
        part.run(None, None)
        if getattr(part, count_attr) >= count:
            return True
    return False


def test_reload_swaps_new_model(models, tmp_path):
    folder, _ = models
    for suffix in (".tflite", ".json"):
        shutil.copy(folder / f"tiny{suffix}", tmp_path / f"car{suffix}")
    clock = FakeClock()
    part = PilotPart(load_pilot(tmp_path / "car.tflite"), reload_on_change=True, clock=clock)
    frame = camera_frames(1)[0]
    before = part.pilot.run(frame)

    make_linear_model(tmp_path / "new", "car", seed=9)
    shutil.copy(tmp_path / "new" / "car.tflite", tmp_path / "car.tflite")

    assert wait_for_reload(part, clock, "reloads", 1)
    after = part.pilot.run(frame)
    assert after != before
    assert part.failed_reloads == 0


def test_reload_keeps_old_on_broken_file(models, tmp_path):
    folder, _ = models
    for suffix in (".tflite", ".json"):
        shutil.copy(folder / f"tiny{suffix}", tmp_path / f"car{suffix}")
    clock = FakeClock()
    old_pilot = load_pilot(tmp_path / "car.tflite")
    part = PilotPart(old_pilot, reload_on_change=True, clock=clock)

    (tmp_path / "car.tflite").write_bytes(b"half a model")

    assert wait_for_reload(part, clock, "failed_reloads", 1)
    assert part.pilot is old_pilot
    assert part.reloads == 0
    frame = camera_frames(1)[0]
    assert part.run(frame, 1.0)[0] == old_pilot.run(frame)[0]
