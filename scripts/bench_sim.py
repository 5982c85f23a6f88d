"""Benchmark the simulator: camera frames per second on one core, and `sim record` speed.

Usage: PYTHONPATH=. python3 scripts/bench_sim.py [--frames 5000] [--minutes 2] [--image docs/images/sim_vs_real.png]

Rendering is timed with OpenCV limited to one thread and the process pinned
to one CPU (where the OS allows it). Recording is timed as `autodrive sim
record` runs it: expert driver, renderer and the real TubWriter writing JPEGs
into a temporary folder, with all cores available.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autodrive.config import default_config  # noqa: E402
from autodrive.sim import create_sim  # noqa: E402
from autodrive.sim.expert import make_expert  # noqa: E402
from autodrive.sim.record import TUB_INPUTS, TUB_TYPES, record  # noqa: E402

REAL_TUB = ROOT.parent / "shared" / "data" / "tubs" / "donkeycar-track-2020"


def bench_render(frames: int, variation: bool, repeats: int = 3) -> float:
    """Return the best of ``repeats`` runs, in frames per second, of rendering along the expert's path."""
    overrides = {} if variation else {"sim__lighting_variation": 0.0, "sim__noise_std": 0.0, "sim__blur_max_px": 0}
    cfg = default_config(sim__track="long", **overrides)
    world = create_sim(cfg)
    expert = make_expert(world, cfg)
    poses = []
    for _ in range(frames):
        action = expert.drive(world.state, world.dt_s)
        world.step(action.angle, action.throttle)
        poses.append(world.state)
    world.render()  # build the renderer outside the timing

    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for state in poses:
            world.state = state
            world.render(variation=variation)
        rates.append(frames / (time.perf_counter() - started))
    return max(rates)


def bench_record(minutes: float) -> tuple[float, int, int]:
    """Return simulated seconds per wall second, records written and dropped for a `sim record` run."""
    from autodrive.tub import TubWriter

    cfg = default_config(sim__track="long")
    world = create_sim(cfg)
    expert = make_expert(world, cfg)
    with tempfile.TemporaryDirectory() as folder:
        writer = TubWriter(Path(folder) / "tub", TUB_INPUTS, TUB_TYPES, queue_size=cfg.recording.queue_size,
                           jpeg_quality=cfg.recording.jpeg_quality)
        started = time.perf_counter()
        result = record(world, expert, writer, minutes * 60.0, queue_size=cfg.recording.queue_size)
        writer.close()
        wall_s = time.perf_counter() - started
    return result.sim_time_s / wall_s, writer.count, writer.dropped


def write_comparison(path: Path) -> None:
    """Write rendered frames (bottom row) under real frames of an indoor track (top row)."""
    real = []
    for index in (100, 300, 500, 700):
        image = cv2.imread(str(REAL_TUB / "images" / f"{index}_cam_image_array_.jpg"))
        if image is None:
            raise SystemExit(f"real frame {index} not found under {REAL_TUB}")
        real.append(image)

    cfg = default_config(sim__track="bends")
    world = create_sim(cfg)
    rendered = []
    for distance_m, offset_m in ((0.5, 0.15), (4.5, 0.2), (7.5, 0.1), (12.0, 0.2)):
        world.place(distance_m, offset_m)
        rendered.append(cv2.cvtColor(world.render(), cv2.COLOR_RGB2BGR))

    grid = np.vstack([np.hstack(real), np.hstack(rendered)])
    grid = cv2.resize(grid, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    for row, label in ((0, "real (Donkey Car tub)"), (1, "autodrive simulator")):
        origin = (8, row * 240 + 22)
        cv2.putText(grid, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(grid, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), grid)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5000, help="frames per render timing run")
    parser.add_argument("--minutes", type=float, default=2.0, help="simulated minutes for the record timing")
    parser.add_argument("--image", type=Path, default=None, help="also write the sim-versus-real picture here")
    args = parser.parse_args()

    if args.image is not None:
        write_comparison(args.image)

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        allowed = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(allowed)})
    clean = [bench_render(args.frames, variation=False) for _ in range(2)]
    varied = [bench_render(args.frames, variation=True) for _ in range(2)]
    print(f"render 160x120, one core, no variation:      {statistics.median(clean):7.0f} frames/s")
    print(f"render 160x120, one core, default variation: {statistics.median(varied):7.0f} frames/s")

    cv2.setNumThreads(threads)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, allowed)
    speedup, count, dropped = bench_record(args.minutes)
    print(f"sim record ({args.minutes:g} simulated min, long track, TubWriter): "
          f"{speedup:.1f} simulated s per wall s, {count} records, {dropped} dropped")


if __name__ == "__main__":
    main()
