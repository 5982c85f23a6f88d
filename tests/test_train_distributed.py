"""Training paths meant for GPUs, run on the CPU: MirroredStrategy and mixed precision.

TensorFlow can split the CPU into two logical devices. The multi-device path
then runs here as on a machine with two GPUs: the model is built in the
strategy's scope, batches are split across replicas, and the mirrored model
is saved and exported. Mixed precision also runs on a CPU, only slowly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_TUB = REPO.parent / "shared" / "data" / "tubs" / "donkeycar-track-2020"

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from autodrive.config import default_config
    from autodrive.train import fit
    from autodrive.train.trainer import plan_training, run_training

    def two_cpu_strategy(mixed_precision):
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    fit.choose_strategy = two_cpu_strategy
    config = default_config(training__batch_size=32)
    plan = plan_training(config, tubs=[sys.argv[1]], model_type="linear", name="mirrored",
                         models_dir=sys.argv[2], epochs=1, progress=0)
    sidecar = run_training(plan)
    print(json.dumps(sidecar["training"]))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_TUB.is_dir(), reason=f"real tub not found at {REAL_TUB}")
def test_mirrored_strategy_trains_and_exports(tmp_path):
    models = tmp_path / "models"

    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(REAL_TUB), str(models)],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    training = json.loads(result.stdout.strip().splitlines()[-1])
    assert training["strategy"] == "MirroredStrategy on 2 devices"
    assert training["epochs"] == 1
    assert (models / "mirrored.keras").is_file()
    assert (models / "mirrored.tflite").is_file()


MIXED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras
    import tensorflow as tf

    from autodrive.config import default_config
    from autodrive.train import fit
    from autodrive.train.trainer import plan_training, run_training

    def mixed_precision_strategy(mixed_precision):
        keras.mixed_precision.set_global_policy("mixed_float16")
        return tf.distribute.get_strategy()

    fit.choose_strategy = mixed_precision_strategy
    config = default_config(training__batch_size=64)
    plan = plan_training(config, tubs=[sys.argv[1]], model_type="linear", name="mixed",
                         models_dir=sys.argv[2], epochs=1, progress=0)
    sidecar = run_training(plan)
    print(json.dumps(sidecar["training"]["metrics"]))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_TUB.is_dir(), reason=f"real tub not found at {REAL_TUB}")
def test_mixed_precision_model_exports_float32(tmp_path):
    models = tmp_path / "models"

    result = subprocess.run(
        [sys.executable, "-c", MIXED_SCRIPT, str(REAL_TUB), str(models)],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert np.isfinite(metrics["val_angle_mae"])
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(models / "mixed.tflite"))
    runner = interpreter.get_signature_runner()
    outputs = runner(img_in=np.zeros((1, 120, 160, 3), dtype=np.float32))
    assert set(outputs) == {"angle", "throttle"}
    assert all(value.dtype == np.float32 for value in outputs.values())
