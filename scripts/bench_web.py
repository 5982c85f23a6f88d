"""Benchmark the web controller: control latency and the drive loop's rate with video viewers.

Run from the repository root:

    PYTHONPATH=. python3 scripts/bench_web.py                 # all figures, about a minute
    PYTHONPATH=. python3 scripts/bench_web.py --seconds 5     # shorter loop runs
    PYTHONPATH=. python3 scripts/bench_web.py --screenshot docs/images/web_phone.png

Everything listens on and connects to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import math
import multiprocessing
import random
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import websocket

from autodrive import channels
from autodrive.parts.web import WebController
from autodrive.vehicle import Vehicle

TOKEN = "bench-token"
TUB_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tubs" / "donkeycar-track-2020" / "images"


def percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(percent / 100 * len(ordered)) - 1))
    return ordered[rank]


class SyntheticCamera:
    """160x120 RGB camera part: a moving stripe over a gradient with noise, a new array per call."""

    def __init__(self, width: int = 160, height: int = 120, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        x = np.linspace(0, 255, width, dtype=np.float32)
        self.base = np.repeat(np.repeat(x[None, :, None], height, axis=0), 3, axis=2)
        self.number = 0

    def run(self):
        self.number += 1
        frame = self.base.copy()
        column = (self.number * 4) % frame.shape[1]
        frame[:, column : column + 8] = (255, 220, 0)
        frame += self.rng.normal(0, 6, frame.shape).astype(np.float32)
        return np.clip(frame, 0, 255).astype(np.uint8), self.number


class CommandProbe:
    """Part that stores when each new user/throttle value first appears in the drive loop's memory."""

    def __init__(self):
        self.seen: dict[float, float] = {}

    def run(self, throttle):
        if throttle not in self.seen:
            self.seen[throttle] = time.perf_counter()


# -- control latency ---------------------------------------------------------------


def control_latency(messages: int, loop_hz: float) -> dict[str, dict[str, float]]:
    """Send control messages and time their arrival in the part's state and in a drive loop's memory."""
    web = WebController(host="127.0.0.1", port=0, token=TOKEN, watchdog_s=10.0, max_throttle=1.0, clock=time.perf_counter)
    probe = CommandProbe()
    vehicle = Vehicle()
    vehicle.add(web, inputs=WebController.INPUTS, outputs=WebController.OUTPUTS, threaded=True)
    vehicle.add(probe, inputs=[channels.USER_THROTTLE])
    runner = threading.Thread(target=vehicle.start, kwargs={"rate_hz": loop_hz}, daemon=True)
    runner.start()
    web.wait_ready()

    ws = websocket.create_connection(
        f"ws://127.0.0.1:{web.port}/ws", cookie=f"autodrive_token={TOKEN}", suppress_origin=True, timeout=10
    )
    ws.sock.setsockopt(6, 1, 1)  # TCP_NODELAY
    ws.recv()  # hello

    rng = random.Random(0)
    to_state_ms, to_memory_ms = [], []
    for seq in range(1, messages + 1):
        throttle = round(seq / (messages + 1), 6)
        sent = time.perf_counter()
        ws.send(json.dumps({"type": "control", "seq": seq, "throttle": throttle}))
        while True:
            reply = json.loads(ws.recv())
            if reply["type"] == "ack":
                break
        applied = web.run_threaded()[6]  # command_time, on the perf_counter clock
        to_state_ms.append((applied - sent) * 1000)
        deadline = time.perf_counter() + 2.0
        while throttle not in probe.seen and time.perf_counter() < deadline:
            time.sleep(0.001)
        if throttle in probe.seen:
            to_memory_ms.append((probe.seen[throttle] - sent) * 1000)
        # A random pause puts the next message at a random point of the loop period,
        # as a person's input would be; a fixed pause would lock onto the loop's phase.
        time.sleep(rng.uniform(0.0, 1.0 / loop_hz))

    ws.close()
    vehicle.stop()
    runner.join(10)
    return {"to_state": summarize(to_state_ms), "to_memory": summarize(to_memory_ms)}


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "mean": statistics.fmean(values),
        "max": max(values),
    }


# -- loop rate with viewers ---------------------------------------------------------------


def _viewer_process(port: int, viewers: int, ready, stop, results) -> None:
    """Child process: open ``viewers`` MJPEG streams and count the frames each receives."""
    counts = [0] * viewers
    connections = []

    def read(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connections.append(connection)
        connection.request("GET", "/video", headers={"Cookie": f"autodrive_token={TOKEN}"})
        response = connection.getresponse()
        try:
            while not stop.is_set():
                line = response.fp.readline()
                if not line:
                    return
                if line.startswith(b"Content-Length:"):
                    length = int(line.split(b":")[1])
                    response.fp.readline()  # X-Frame-Id
                    response.fp.readline()  # blank line
                    response.fp.read(length)
                    counts[index] += 1
        except OSError:
            return

    threads = [threading.Thread(target=read, args=(index,), daemon=True) for index in range(viewers)]
    for thread in threads:
        thread.start()
    ready.set()
    stop.wait()
    results.put(counts)


def loop_rate(viewers: int, seconds: float, loop_hz: float) -> dict[str, float]:
    """Run a 20 Hz drive loop with a synthetic camera and the web controller, with ``viewers`` MJPEG clients."""
    web = WebController(host="127.0.0.1", port=0, token=TOKEN, watchdog_s=10.0)
    vehicle = Vehicle()
    vehicle.add(SyntheticCamera(), outputs=[channels.CAMERA_IMAGE, channels.CAMERA_FRAME], name="camera")
    vehicle.add(web, inputs=WebController.INPUTS, outputs=WebController.OUTPUTS, threaded=True, name="web")
    runner = threading.Thread(target=vehicle.start, kwargs={"rate_hz": loop_hz}, daemon=True)
    runner.start()
    web.wait_ready()

    context = multiprocessing.get_context("spawn")
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    child = None
    if viewers:
        child = context.Process(target=_viewer_process, args=(web.port, viewers, ready, stop, results), daemon=True)
        child.start()
        ready.wait(30)
        deadline = time.monotonic() + 30
        while len(web.hub.viewers) < viewers and time.monotonic() < deadline:
            time.sleep(0.05)

    loops_before, encoded_before, encode_s_before = vehicle.loops, web.hub.encoded_count, web.hub.encode_s_total
    overruns_before = vehicle.overruns
    started = time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - started
    loops = vehicle.loops - loops_before
    encoded = web.hub.encoded_count - encoded_before
    encode_s = web.hub.encode_s_total - encode_s_before
    overruns = vehicle.overruns - overruns_before
    timing = vehicle.timing_summary()["web"]

    frames_per_viewer = []
    if child is not None:
        stop.set()
        frames_per_viewer = results.get(timeout=30)
        child.join(10)
    vehicle.stop()
    runner.join(10)

    return {
        "viewers": viewers,
        "loop_hz": loops / elapsed,
        "overruns": overruns,
        "web_part_p50_ms": timing["p50_s"] * 1000,
        "web_part_p99_ms": timing["p99_s"] * 1000,
        "frames_encoded_per_s": encoded / elapsed,
        "encode_ms_mean": encode_s / encoded * 1000 if encoded else 0.0,
        "viewer_fps_min": min(frames_per_viewer) / elapsed if frames_per_viewer else 0.0,
        "viewer_fps_mean": statistics.fmean(frames_per_viewer) / elapsed if frames_per_viewer else 0.0,
    }


# -- screenshot ------------------------------------------------------------------------------


class TubCamera:
    """Camera part that plays the recorded tub's frames in order."""

    def __init__(self, count: int = 200):
        import cv2

        paths = sorted(TUB_IMAGES.glob("*_cam_image_array_.jpg"), key=lambda path: int(path.name.split("_")[0]))[:count]
        if not paths:
            raise SystemExit(f"no tub images found in {TUB_IMAGES}")
        self.frames = [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path in paths]
        self.number = 0

    def run(self):
        self.number += 1
        return self.frames[self.number % len(self.frames)], self.number, self.number


def screenshot(path: Path) -> None:
    """Save the driving page on a 390x844 phone viewport, with video playing and the joystick held."""
    from playwright.sync_api import sync_playwright

    web = WebController(host="127.0.0.1", port=0, token=TOKEN, watchdog_s=1.0)
    vehicle = Vehicle()
    vehicle.add(TubCamera(), outputs=[channels.CAMERA_IMAGE, channels.CAMERA_FRAME, channels.RECORD_COUNT])
    vehicle.add(web, inputs=WebController.INPUTS, outputs=WebController.OUTPUTS, threaded=True)
    runner = threading.Thread(target=vehicle.start, kwargs={"rate_hz": 20}, daemon=True)
    runner.start()
    web.wait_ready()

    args = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
        page.goto(f"http://127.0.0.1:{web.port}/?token={TOKEN}")
        page.wait_for_function("document.getElementById('video').naturalWidth > 0", timeout=15000)
        page.locator("#record").click()
        time.sleep(1.5)  # let the loop rate and latency readouts fill in
        box = page.locator("#pad").bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.62, box["y"] + box["height"] * 0.3)
        page.mouse.down()
        time.sleep(0.5)
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path))
        page.mouse.up()
        browser.close()

    vehicle.stop()
    runner.join(10)
    print(f"screenshot saved to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500, help="control messages for the latency figures")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each loop-rate run, s")
    parser.add_argument("--viewers", type=int, default=20, help="MJPEG viewers in the second loop-rate run")
    parser.add_argument("--loop-hz", type=float, default=20.0, help="drive loop rate, Hz")
    parser.add_argument("--screenshot", type=Path, help="only save a phone-sized screenshot of the page to this PNG")
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    if options.screenshot:
        screenshot(options.screenshot)
        return

    latency = control_latency(options.messages, options.loop_hz)
    for name, figures in latency.items():
        print(
            f"control latency {name:<9}: n={figures['count']} p50 {figures['p50']:.2f} ms  "
            f"p99 {figures['p99']:.2f} ms  mean {figures['mean']:.2f} ms  max {figures['max']:.2f} ms"
        )

    for viewers in (0, options.viewers):
        result = loop_rate(viewers, options.seconds, options.loop_hz)
        print(
            f"loop with {viewers:>2} viewers: {result['loop_hz']:.2f} Hz, {result['overruns']} overruns, "
            f"web part p50 {result['web_part_p50_ms']:.3f} ms p99 {result['web_part_p99_ms']:.3f} ms, "
            f"encoded {result['frames_encoded_per_s']:.1f} frames/s ({result['encode_ms_mean']:.2f} ms each), "
            f"viewer fps min {result['viewer_fps_min']:.1f} mean {result['viewer_fps_mean']:.1f}"
        )


if __name__ == "__main__":
    main()
