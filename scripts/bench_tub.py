#!/usr/bin/env python3
"""Measure how fast TubWriter records, and how long the drive loop's call to it takes.

Frames are the real 160x120 images of the shared Donkey Car tub, decoded to
RGB arrays first, so the writer encodes JPEGs as it does on the car.

1. Throughput: write N records as fast as the writer accepts them
   (``block=True``) and time until ``close()`` returns, for 1..3 workers.
2. Loop-side latency: call ``Recorder.run`` as the drive loop does, at
   20 Hz and at rates that keep the writer always busy, and time each call
   with ``perf_counter_ns``. Before each call a fresh frame is copied out of
   the list, untimed, as a camera would hand the loop a new frame.
3. Optionally the same two numbers for Donkey Car's ``TubWriter`` part,
   run in its own venv (``--donkey-python``), where encoding and writing
   happen inside the call.

Each measurement runs once in a folder on disk and once on /dev/shm
(tmpfs), which separates the CPU cost from the file system's.

Usage: PYTHONPATH=. python3 scripts/bench_tub.py [--records 5000] [--donkey-python PATH]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autodrive.parts.recorder import Recorder  # noqa: E402
from autodrive.tub import TubWriter, open_tub  # noqa: E402

SHARED_TUB = REPO.parent / "shared" / "data" / "tubs" / "donkeycar-track-2020"
INPUTS = ["cam/image_array", "user/angle", "user/throttle", "user/mode"]
TYPES = ["image_array", "float", "float", "str"]
DEFAULT_DONKEY_PYTHON = Path.home() / ".cache" / "autodrive-tests" / "donkey-venv" / "bin" / "python"

DONKEY_BENCH = r"""
import json, sys, time
import numpy as np
from donkeycar.parts.tub_v2 import TubWriter

frames = np.load(sys.argv[2])["frames"]
count = int(sys.argv[3])
writer = TubWriter(sys.argv[1], inputs=["cam/image_array", "user/angle", "user/throttle", "user/mode"],
                   types=["image_array", "float", "float", "str"])
calls = []
start = time.perf_counter()
for number in range(count):
    begin = time.perf_counter_ns()
    writer.run(frames[number % len(frames)], 0.1, 0.5, "user")
    calls.append(time.perf_counter_ns() - begin)
writer.close()
elapsed = time.perf_counter() - start
calls.sort()
result = {"records_per_s": count / elapsed, "p50_ms": calls[len(calls) // 2] / 1e6,
          "p99_ms": calls[int(len(calls) * 0.99)] / 1e6, "max_ms": calls[-1] / 1e6}
with open(sys.argv[4], "w") as file:
    json.dump(result, file)
"""


def load_frames() -> list[np.ndarray]:
    tub = open_tub(SHARED_TUB)
    return [tub.load_image(record) for record in tub.records()]


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def measure_throughput(frames: list[np.ndarray], count: int, workers: int, folder: Path) -> float:
    """Return records per second written, from the first write until close() has forced them to disk."""
    writer = TubWriter(folder / f"throughput_{workers}", INPUTS, TYPES, workers=workers, queue_size=400)
    start = time.perf_counter()
    for number in range(count):
        writer.write({"cam/image_array": frames[number % len(frames)], "user/angle": 0.1,
                      "user/throttle": 0.5, "user/mode": "user"}, block=True)
    writer.close()
    elapsed = time.perf_counter() - start
    assert writer.count == count, f"only {writer.count} of {count} records written"
    return count / elapsed


def measure_loop_calls(frames: list[np.ndarray], count: int, rate_hz: float, folder: Path) -> dict[str, float]:
    """Time Recorder.run at ``rate_hz`` while its writer works; return p50, p99, max in ms and drops."""
    recorder = Recorder(folder / f"loop_{int(rate_hz)}")
    period_s = 1.0 / rate_hz
    calls_ns = []
    next_time = time.perf_counter()
    for number in range(count):
        image = frames[number % len(frames)].copy()
        begin = time.perf_counter_ns()
        recorder.run(True, 0.5, "user", image, 0.1, 0.5, "user")
        calls_ns.append(time.perf_counter_ns() - begin)
        next_time += period_s
        pause = next_time - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    recorder.shutdown()
    calls_ns.sort()
    return {
        "p50_ms": statistics.median(calls_ns) / 1e6,
        "p99_ms": percentile(calls_ns, 0.99) / 1e6,
        "max_ms": calls_ns[-1] / 1e6,
        "written": recorder.writer.count,
        "dropped": recorder.writer.dropped,
    }


def measure_call_floor(count: int, rate_hz: float) -> dict[str, float]:
    """Time a trivial call (one deque append) on the same schedule, with no writer running.

    After the loop sleeps between iterations, even this call runs with cold
    caches; its figures are the floor that any part's call meets at that rate.
    """
    queue: collections.deque = collections.deque(maxlen=1000)
    period_s = 1.0 / rate_hz
    calls_ns = []
    next_time = time.perf_counter()
    for number in range(count):
        begin = time.perf_counter_ns()
        queue.append((number, time.time_ns()))
        calls_ns.append(time.perf_counter_ns() - begin)
        next_time += period_s
        pause = next_time - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    calls_ns.sort()
    return {"p50_ms": statistics.median(calls_ns) / 1e6, "p99_ms": percentile(calls_ns, 0.99) / 1e6}


def measure_donkey(python: Path, frames: list[np.ndarray], count: int, folder: Path) -> dict[str, float]:
    frames_file = folder / "frames.npz"
    np.savez(frames_file, frames=np.stack(frames))
    script = folder / "donkey_bench.py"
    script.write_text(DONKEY_BENCH)
    output = folder / "donkey.json"
    subprocess.run([str(python), str(script), str(folder / "donkey_tub"), str(frames_file), str(count), str(output)],
                   check=True, capture_output=True, timeout=600)
    return json.loads(output.read_text())


def run_all(frames: list[np.ndarray], records: int, folder: Path, donkey_python: Path | None) -> None:
    best = 0.0
    for workers in (1, 2, 3, 4):
        rate = measure_throughput(frames, records, workers, folder)
        best = max(best, rate)
        print(f"  autodrive TubWriter, {workers} worker(s): {rate:,.0f} records/s sustained")

    for rate_hz in (20, 1000, round(best * 0.8, -2)):
        count = 400 if rate_hz == 20 else records
        calls = measure_loop_calls(frames, count, rate_hz, folder)
        print(f"  Recorder.run at {rate_hz:,.0f} Hz ({count} calls): p50 {calls['p50_ms']:.4f} ms, "
              f"p99 {calls['p99_ms']:.4f} ms, max {calls['max_ms']:.3f} ms; "
              f"{calls['written']} written, {calls['dropped']} dropped")
        if rate_hz == 20:
            floor = measure_call_floor(count, rate_hz)
            print(f"    for scale, one deque append at {rate_hz} Hz with no writer: "
                  f"p50 {floor['p50_ms']:.4f} ms, p99 {floor['p99_ms']:.4f} ms")

    if donkey_python is None:
        print("  Donkey Car: skipped (no --donkey-python and no test venv)")
        return
    donkey = measure_donkey(donkey_python, frames, records, folder)
    print(f"  Donkey Car TubWriter.run: {donkey['records_per_s']:,.0f} records/s; per call p50 "
          f"{donkey['p50_ms']:.3f} ms, p99 {donkey['p99_ms']:.3f} ms, max {donkey['max_ms']:.3f} ms")
    print(f"  autodrive / Donkey Car throughput: {best / donkey['records_per_s']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000, help="records per measurement (default 5000)")
    parser.add_argument("--donkey-python", type=Path, default=None,
                        help="Python of a venv with donkeycar installed; default: the test venv if present")
    arguments = parser.parse_args()
    donkey_python = arguments.donkey_python or (DEFAULT_DONKEY_PYTHON if DEFAULT_DONKEY_PYTHON.exists() else None)

    frames = load_frames()
    print(f"frames: {len(frames)} real {frames[0].shape[1]}x{frames[0].shape[0]} RGB images; "
          f"{os.cpu_count()} CPUs; {arguments.records} records per measurement")

    places = [("disk", None)]
    if Path("/dev/shm").is_dir():
        places.append(("tmpfs", "/dev/shm"))
    for label, parent in places:
        with tempfile.TemporaryDirectory(prefix="bench_tub_", dir=parent) as temporary:
            print(f"{label} ({temporary}):")
            run_all(frames, arguments.records, Path(temporary), donkey_python)


if __name__ == "__main__":
    main()
