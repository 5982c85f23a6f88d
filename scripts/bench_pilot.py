"""Benchmark the pilot: inference latency per frame, and frame-to-motor latency in a running car.

Builds the Donkey-sized ``linear`` model of ``autodrive.train.models``
(untrained weights: latency does not depend on them), saves it as ``.keras``
and as ``.tflite`` in float32, float16 and int8 (calibrated on real frames of
the recorded track tub), then:

1. runs each file through ``autodrive.parts.pilot.load_pilot`` on the real
   160x120 frames of the tub and reports p50/p99 of ``Pilot.run`` (frame
   preparation, inference, output decoding), after warm-up runs;
2. runs a Vehicle assembled by ``autodrive.assemble.build_vehicle`` on the
   simulator in ``local`` mode (no web controller, no recorder) at
   ``drive.loop_hz``, with the pilot inline and threaded. For each loop it
   reports the time from the capture of the frame behind the command to the
   drivetrain receiving that command.

Usage: PYTHONPATH=. python3 scripts/bench_pilot.py [--frames 300] [--loops 400]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TUB = REPO.parent / "shared" / "data" / "tubs" / "donkeycar-track-2020"


def load_frames(count: int) -> list[np.ndarray]:
    from autodrive.tub import open_tub

    tub = open_tub(TUB)
    frames = []
    for record in tub.records():
        frames.append(tub.load_image(record))
        if len(frames) == count:
            break
    return frames


def write_models(folder: Path, frames: list[np.ndarray]) -> dict[str, Path]:
    import json

    import tensorflow as tf

    from autodrive.train.models import ModelSpec, build_model

    model = build_model(ModelSpec("linear", 120, 160))
    model.save(folder / "bench.keras")
    files = {"keras": folder / "bench.keras"}

    def representative():
        for frame in frames[:100]:
            yield [frame[None].astype(np.float32) / 255.0]

    for variant in ("float32", "float16", "int8"):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if variant == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif variant == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
        path = folder / f"bench_{variant}.tflite"
        path.write_bytes(converter.convert())
        files[f"tflite {variant}"] = path

    sidecar = {
        "autodrive_model": 1, "name": "bench", "type": "linear", "created": "2026-01-01T00:00:00+00:00",
        "input": {"width": 160, "height": 120, "crop_top": 0, "crop_bottom": 0, "color": "rgb",
                  "scale": 255.0, "dtype": "float32"},
        "image_input": "img_in", "memory_input": None, "memory_length": 0,
        "outputs": {"angle": {"name": "angle", "kind": "value"}, "throttle": {"name": "throttle", "kind": "value"}},
        "files": {"keras": "bench.keras", "tflite": "bench_float32.tflite"},
        "training": {"tubs": [], "records": {}, "epochs": 0, "metrics": {}, "quantize": None},
    }
    for path in files.values():
        path.with_suffix(".json").write_text(json.dumps(sidecar))
    return files


def percentile_ms(samples: list[float], percent: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000.0, percent))


def bench_inference(files: dict[str, Path], frames: list[np.ndarray], warmup: int = 20) -> None:
    from autodrive.parts.pilot import load_pilot

    print(f"\ninference per frame, {len(frames)} real 160x120 frames, after {warmup} warm-up runs")
    print(f"{'model':<16} {'size KiB':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for label, path in files.items():
        pilot = load_pilot(path)
        for frame in frames[:warmup]:
            pilot.run(frame)
        samples = []
        for frame in frames:
            started = time.perf_counter()
            pilot.run(frame)
            samples.append(time.perf_counter() - started)
        size_kib = path.stat().st_size / 1024
        print(f"{label:<16} {size_kib:>9.0f} {percentile_ms(samples, 50):>8.2f} {percentile_ms(samples, 99):>8.2f} "
              f"{np.mean(samples) * 1000:>8.2f}")


class LatencyProbe:
    """Part placed right after the drivetrain: capture of the frame behind the command to the command sent.

    With a threaded pilot the command comes from an older frame than the
    camera's newest, so the probe reads the capture time of that frame from the pilot part.
    """

    def __init__(self, pilot_part):
        self.pilot_part = pilot_part
        self.samples: list[float] = []

    def run(self, safe_throttle):
        capture_time = self.pilot_part.output_capture_time
        if capture_time is not None and safe_throttle is not None:
            self.samples.append(time.monotonic() - capture_time)


def bench_loop(model: Path, loops: int, threaded: bool) -> None:
    from autodrive import channels as ch
    from autodrive.assemble import build_vehicle, find_part
    from autodrive.config import default_config

    cfg = default_config(drive__mode="local", pilot__threaded=threaded, camera__type="sim", drivetrain__type="sim",
                         drive__timing_report=False)
    vehicle = build_vehicle(cfg, model=model, web=False, record=False)
    probe = LatencyProbe(find_part(vehicle, "pilot"))
    vehicle.add(probe, inputs=[ch.SAFE_THROTTLE], name="probe")
    report = vehicle.start(rate_hz=cfg.drive.loop_hz, max_loops=loops)
    samples = probe.samples[20:]
    label = "threaded" if threaded else "inline"
    print(f"{label:<10} {len(samples):>6} {percentile_ms(samples, 50):>8.2f} {percentile_ms(samples, 99):>8.2f} "
          f"{report.overruns:>9} {vehicle.loop_hz:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="number of real frames timed per model file (default 300)")
    parser.add_argument("--loops", type=int, default=400, help="drive-loop iterations per end-to-end run (default 400)")
    options = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {os.cpu_count()} CPU cores, {sys.platform}, Python {sys.version.split()[0]}")
    frames = load_frames(options.frames)
    with tempfile.TemporaryDirectory() as folder:
        files = write_models(Path(folder), frames)
        bench_inference(files, frames)

        print(f"\nframe capture to drivetrain command, simulator at 20 Hz, {options.loops} loops "
              "(first 20 left out)")
        print(f"{'pilot':<10} {'loops':>6} {'p50 ms':>8} {'p99 ms':>8} {'overruns':>9} {'rate Hz':>8}")
        for threaded in (False, True):
            bench_loop(files["tflite float32"], options.loops, threaded)


if __name__ == "__main__":
    main()
