"""Training under tf.distribute.MirroredStrategy, on two logical CPU devices.

No GPU is needed: TensorFlow can split the CPU into two logical devices, so
the multi-device path (model built in the strategy's scope, batches split
across replicas, checkpoint and TFLite export of the mirrored model) runs
here the way it runs on a machine with two GPUs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

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
