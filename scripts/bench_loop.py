"""Measure the drive loop's own cost and its timing accuracy.

Prints two figures:
1. overhead per part per iteration (µs): 10 trivial parts at an unlimited
   rate, per-part timing on, minus the cost of calling the same parts
   directly in a plain Python loop (also printed);
2. start-time error at 50 Hz: p50 and p99 of |actual - scheduled| start of
   each iteration over --seconds of real time (default 30).

Run: python scripts/bench_loop.py [--loops N] [--seconds S]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import subprocess
import time

from autodrive.vehicle import PartTiming, Vehicle, percentile

PARTS = 10


class Passthrough:
    """A trivial part: returns its input."""

    def run(self, value):
        return value


def build_vehicle(timing: bool) -> Vehicle:
    vehicle = Vehicle(timing=timing)
    vehicle.mem["channel/0"] = 1
    for number in range(PARTS):
        vehicle.add(Passthrough(), inputs=[f"channel/{number}"], outputs=[f"channel/{number + 1}"])
    return vehicle


def time_vehicle(loops: int, timing: bool) -> float:
    """Return seconds per part per iteration of a Vehicle running flat out."""
    vehicle = build_vehicle(timing)
    started = time.perf_counter()
    vehicle.start(rate_hz=None, max_loops=loops)
    return (time.perf_counter() - started) / loops / PARTS


def time_direct_calls(loops: int) -> float:
    """Return seconds per call of the same parts called in a plain loop."""
    parts = [Passthrough() for _ in range(PARTS)]
    started = time.perf_counter()
    for _ in range(loops):
        value = 1
        for part in parts:
            value = part.run(value)
    return (time.perf_counter() - started) / loops / PARTS


def measure_overhead(loops: int, repeats: int) -> None:
    rows = []
    for timing in (True, False):
        totals = [time_vehicle(loops, timing) for _ in range(repeats)]
        direct = [time_direct_calls(loops) for _ in range(repeats)]
        total = min(totals)
        call = min(direct)
        rows.append((timing, total, call))
        label = "on " if timing else "off"
        print(
            f"per-part timing {label}: {total * 1e6:.3f} µs per part per iteration in the Vehicle, "
            f"{call * 1e6:.3f} µs for a direct call, loop overhead {(total - call) * 1e6:.3f} µs "
            f"(best of {repeats} runs of {loops} iterations x {PARTS} parts)"
        )


def measure_timing_error(seconds: float, rate_hz: float) -> None:
    loops = int(seconds * rate_hz)
    vehicle = build_vehicle(timing=True)
    vehicle.start_errors = PartTiming(window=loops)  # keep every sample
    vehicle.start(rate_hz=rate_hz, max_loops=loops)
    errors = sorted(abs(value) for value in vehicle.start_errors.samples)
    print(
        f"start-time error at {rate_hz:g} Hz over {len(errors)} iterations ({seconds:g} s): "
        f"p50 {percentile(errors, 50) * 1e6:.0f} µs, p99 {percentile(errors, 99) * 1e6:.0f} µs, "
        f"max {errors[-1] * 1e6:.0f} µs, mean {statistics.fmean(errors) * 1e6:.0f} µs, "
        f"overruns {vehicle.overruns}"
    )


DONKEY_SNIPPET = """
import logging, sys, time
logging.disable(logging.CRITICAL)
from donkeycar.vehicle import Vehicle

class Passthrough:
    def run(self, value):
        return value

loops, repeats, parts = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
best = float("inf")
for _ in range(repeats):
    vehicle = Vehicle()
    vehicle.mem["channel/0"] = 1
    for number in range(parts):
        vehicle.add(Passthrough(), inputs=[f"channel/{number}"], outputs=[f"channel/{number + 1}"])
    started = time.perf_counter()
    vehicle.start(rate_hz=1e9, max_loop_count=loops)
    best = min(best, (time.perf_counter() - started) / loops / parts)
import donkeycar
print(donkeycar.__version__, best)
"""


def measure_donkey(python: str, loops: int, repeats: int) -> None:
    """Time Donkey Car's own Vehicle the same way, in another interpreter that has donkeycar."""
    result = subprocess.run(
        [python, "-c", DONKEY_SNIPPET, str(loops), str(repeats), str(PARTS)],
        capture_output=True, text=True, check=True,
    )
    version, seconds = result.stdout.split()[-2:]
    print(
        f"Donkey Car {version} Vehicle: {float(seconds) * 1e6:.3f} µs per part per iteration "
        f"(same parts, rate_hz=1e9 so it never sleeps, best of {repeats} runs)"
    )


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, where Linux provides it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=200_000, help="iterations per overhead run")
    parser.add_argument("--repeats", type=int, default=5, help="overhead runs; the best is reported")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the 50 Hz timing run")
    parser.add_argument("--donkey-python", metavar="PYTHON",
                        help="a Python interpreter with donkeycar installed, to time Donkey Car's Vehicle too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    print(f"python {platform.python_version()} on {platform.machine()}, {cpu_model()}, {os.cpu_count()} cores")
    measure_overhead(args.loops, args.repeats)
    if args.donkey_python:
        measure_donkey(args.donkey_python, args.loops, args.repeats)
    measure_timing_error(args.seconds, 50.0)


if __name__ == "__main__":
    main()
