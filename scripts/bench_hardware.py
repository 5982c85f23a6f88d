"""Time the hardware parts' own code: PCA9685 commands, frame conversion and tub replay.

The PCA9685 runs the real adafruit driver over the fake I2C bus of the
tests, so the figures leave out the time the bytes take on a real bus.
Run from the repository root: PYTHONPATH=. python3 scripts/bench_hardware.py
"""

from __future__ import annotations

import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autodrive.config import default_config  # noqa: E402
from autodrive.parts.actuator import create_pca9685_drivetrain  # noqa: E402
from autodrive.parts.cameras import to_rgb  # noqa: E402
from autodrive.parts.cameras.replay import ReplayCamera  # noqa: E402
from tests.fakes.i2c import FakeI2C  # noqa: E402

TRACK_TUB = REPO.parent / "shared" / "data" / "tubs" / "donkeycar-track-2020"


def time_calls(function, count: int, repeats: int = 5) -> float:
    """Return the median over ``repeats`` of the mean time of one call, in µs."""
    means = []
    for _ in range(repeats):
        started = time.perf_counter()
        for index in range(count):
            function(index)
        means.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(means)


def bench_drivetrain() -> None:
    bus = FakeI2C()
    drivetrain = create_pca9685_drivetrain(default_config(), bus)
    commands = np.sin(np.linspace(0, 40 * np.pi, 2000))

    def changing(index: int) -> None:
        value = float(commands[index % len(commands)])
        drivetrain.run(value, value * 0.5)

    def unchanged(index: int) -> None:
        drivetrain.run(0.25, 0.1)

    before = len(bus.writes)
    changing_us = time_calls(changing, 2000)
    writes_per_run = (len(bus.writes) - before) / (2000 * 5)
    unchanged(0)
    before = len(bus.writes)
    unchanged_us = time_calls(unchanged, 20000)
    unchanged_writes = len(bus.writes) - before
    print(f"PCA9685Drivetrain.run, command changes every call: {changing_us:.1f} µs per call, {writes_per_run:.2f} I2C writes per call")
    print(f"PCA9685Drivetrain.run, same command: {unchanged_us:.2f} µs per call, {unchanged_writes} I2C writes in 100000 calls")


def bench_conversion() -> None:
    large = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    small = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    resize_us = time_calls(lambda index: to_rgb(large, "bgr", 160, 120), 500)
    reorder_us = time_calls(lambda index: to_rgb(small, "bgr", 160, 120), 5000)
    print(f"to_rgb 640x480 BGR -> 160x120 RGB (resize): {resize_us:.0f} µs per frame")
    print(f"to_rgb 160x120 BGR -> 160x120 RGB (channel order only): {reorder_us:.1f} µs per frame")


def bench_replay() -> None:
    if not TRACK_TUB.is_dir():
        print(f"replay: skipped, {TRACK_TUB} not found")
        return
    started = time.perf_counter()
    camera = ReplayCamera(TRACK_TUB, loop=True)
    open_s = time.perf_counter() - started
    count = len(camera.records)
    started = time.perf_counter()
    for _ in range(count):
        camera.run()
    elapsed_s = time.perf_counter() - started
    print(f"ReplayCamera on {count} records: open {open_s * 1e3:.0f} ms, {elapsed_s / count * 1e3:.2f} ms per frame ({count / elapsed_s:.0f} frames/s)")


def main() -> None:
    print(f"machine: {platform.machine()}, {platform.processor() or 'unknown CPU'}, Python {platform.python_version()}")
    bench_drivetrain()
    bench_conversion()
    bench_replay()


if __name__ == "__main__":
    main()
